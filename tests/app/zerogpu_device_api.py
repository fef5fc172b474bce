"""A local stand-in for ZeroGPU's device API (SPACES_ZERO_DEVICE_API_URL), answering what `spaces` 0.51.3's client
asks (spaces/zero/api.py): POST /startup-report (200), /schedule (200 + a JSON ScheduleResponse: idle, nvidiaIndex,
nvidiaUUID, allowToken), /allow and /release (200). It grants every request at once and records each call's query
(the requested `durationSeconds` among them). No queueing, quotas or GPU: those are the real service's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from tests.helpers import free_port, wait_until_serving

ANSWERED = ("/startup-report", "/schedule", "/allow", "/release")


class DeviceApi:
    def __init__(self, *, idle: bool = False):
        self.calls: list[tuple[str, dict]] = []
        self.idle = idle  # True: spaces reuses its previous worker for the next call
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                api.calls.append((url.path, query))
                body = b""
                if url.path == "/schedule":
                    grant = {"idle": api.idle, "nvidiaIndex": 0, "nvidiaUUID": "GPU-stand-in", "allowToken": "t0"}
                    body = json.dumps(grant).encode()
                self.send_response(200 if url.path in ANSWERED else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> DeviceApi:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def paths(self) -> list[str]:
        return [path for path, _ in self.calls]

    def durations(self) -> list[int]:
        return [int(q["durationSeconds"]) for path, q in self.calls if path == "/schedule"]


def zero_gpu_env(api: DeviceApi, offload_dir: str, cgroup_file: str) -> dict[str, str]:
    """The environment of a ZeroGPU Space, pointed at the stand-in (and at writable folders)."""
    return {
        "SPACES_ZERO_GPU": "true",
        "SPACES_ZERO_DEVICE_API_URL": api.url,
        "ZEROGPU_OFFLOAD_DIR": offload_dir,
        "ZEROGPU_PROC_SELF_CGROUP_PATH": cgroup_file,
    }


HARNESS = Path(__file__).with_name("zerogpu_harness.py")


@contextmanager
def started(
    python: Path | str, app_file: Path, env: dict[str, str], log: Path, *args: str, timeout: float = 300
) -> Iterator[str]:
    """`app_file` run by `python` under the harness (real `spaces`, ZeroGPU mode) on a free port; yields its URL
    once it answers, stops it after."""
    port = free_port()
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            [str(python), str(HARNESS), str(app_file), "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=app_file.parent,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: spaces' forked workers go down with it
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(url, proc, log, timeout)
        yield url
    finally:  # the app and every GPU worker `spaces` forked (daemon processes outlive a SIGTERM'd parent)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=30)
                time.sleep(1)  # workers: a moment to exit on their own
            except subprocess.TimeoutExpired:
                continue


def read_report(path: Path) -> list[dict]:
    """The harness's JSON lines (what `spaces` packed, moved and pickled)."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
