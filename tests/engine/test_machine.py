"""The one machine description: the card's `machine` block and the benchmark's `environment` come from it."""

from __future__ import annotations

import os

import torch

from dit_demo.engine import machine


def test_machine_description_has_the_cards_keys():
    info = machine.machine_description("cpu")
    assert {"device", "cpu", "cpu_count", "torch_threads", "platform", "python", "torch"} <= set(info)
    assert info["device"] == "cpu" and "gpu" not in info and info["cpu_count"] == os.cpu_count()
    assert info["torch_threads"] == torch.get_num_threads() and info["torch"] == torch.__version__
    assert info["diffusers"] and info["optimum-quanto"]


def test_environment_is_built_from_the_description(monkeypatch):
    calls = []
    real = machine.machine_description

    def spy(device):
        calls.append(str(device))
        return {**real(device), "cpu": "Test CPU 9000"}

    monkeypatch.setattr(machine, "machine_description", spy)
    env = machine.environment(torch.device("cpu"), num_processes=1)
    assert calls == ["cpu"]
    assert (
        env["cpu"] == "Test CPU 9000"
        and env["machine"] == env["device_name"] == f"Test CPU 9000 ({os.cpu_count()} logical cores)"
    )
    assert env["torch_num_threads"] == torch.get_num_threads() and env["num_processes"] == 1
    assert env["optimum_quanto"] == real("cpu")["optimum-quanto"] and env["date"]
    assert machine.environment(torch.device("cpu"), 2, machine="a named box")["machine"] == "a named box"
