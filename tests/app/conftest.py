"""App tests: a launched app per test module. A module defines its own `service` fixture (model, limits,
calibration); `url` serves it on a free local port and `client` is gradio_client's view of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gradio_client import Client
from helpers import serving

from app import build_demo
from dit_demo.app.service import DemoService


@pytest.fixture(scope="module")
def url(service: DemoService) -> Iterator[str]:
    with serving(build_demo(service=service)) as local_url:
        yield local_url


@pytest.fixture(scope="module")
def client(url: str) -> Client:
    return Client(url, verbose=False)
