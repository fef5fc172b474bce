"""Helpers for tests that launch the real app: a free port and a `with` block that serves a Gradio demo."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (tests and the startup measurement launch on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(demo, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Run the real app (a `gr.Blocks`) on a local port for the duration of a `with` block; yields its URL."""
    from dit_demo.app.page.views import launch_kwargs

    demo.launch(
        prevent_thread_lock=True, server_name=host, server_port=port or free_port(host), quiet=True, **launch_kwargs()
    )
    try:
        yield demo.local_url
    finally:
        demo.close()


def wait_until_serving(url: str, proc, log, timeout: float) -> None:
    """Poll `url` until it answers 200; fail with the log's tail if the process exits or `timeout` s pass."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"the app exited ({proc.returncode}):\n{log.read_text()[-4000:]}"
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"no answer in {timeout} s:\n{log.read_text()[-4000:]}"
        time.sleep(1)
