"""What the commands share: list types and the exit policy."""

from __future__ import annotations

import argparse

import pytest

from dit_demo.cli.common import comma_ints, comma_list, guarded
from dit_demo.errors import DemoError


class CodedError(DemoError):
    exit_code = 6


def test_comma_lists():
    assert comma_list(" three, seven ,,") == ["three", "seven"]
    assert comma_ints("7, 8") == [7, 8] and comma_ints("") == []
    with pytest.raises(argparse.ArgumentTypeError, match="whole numbers"):
        comma_ints("7,x")


@pytest.mark.parametrize(
    ("error", "code"), [(DemoError("bad input"), 2), (FileExistsError("out exists"), 2), (CodedError("offline"), 6)]
)
def test_errors_become_one_line_and_an_exit_code(error, code, capsys):
    def run(args):
        raise error

    assert guarded(run, argparse.Namespace()) == code
    assert capsys.readouterr().err == f"error: {error}\n"


def test_success_passes_through():
    assert guarded(lambda args: 0, argparse.Namespace()) == 0
