"""Where the numbers come from: timings mean nothing without the machine and the library versions."""

from __future__ import annotations

import datetime as dt
import os
import platform
from importlib import metadata

import torch


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({os.cpu_count()} logical cores)"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment(device: torch.device, num_processes: int, machine: str | None = None) -> dict:
    """Where the numbers come from: timings mean nothing without the machine and the library versions."""
    name = device_name(device)
    return {
        "machine": machine or (f"{num_processes}× {name}" if num_processes > 1 and device.type == "cuda" else name),
        "device_type": device.type,
        "device_name": name,
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_num_threads": torch.get_num_threads(),
        "num_processes": num_processes,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "diffusers": _version("diffusers"),
        "optimum_quanto": _version("optimum-quanto"),
        "accelerate": _version("accelerate"),
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    }
