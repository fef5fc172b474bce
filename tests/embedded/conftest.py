"""Fixtures of the embedded model's tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def outer_threads():
    """The process runs on 2 torch threads during the test (put back after it), so that code which runs on 1 thread
    and fails to put the count back is seen: the test asserts the count is still 2 after the call."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(before)
