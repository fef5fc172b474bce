"""Where the numbers come from: timings mean nothing without the machine and the library versions.

The one machine description. `machine_description` names the machine (device, GPU or CPU model, threads, library
versions); `environment` — the benchmark's and gallery's `environment` block — is built from it, and the model
card's `machine` block is it. Both keep their historical key names (written files stay readable).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from importlib import metadata

import torch

LIBRARIES = ("diffusers", "optimum-quanto", "huggingface_hub")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_description(device: torch.device | str) -> dict:
    """Name the machine the numbers were measured on: GPU name, or the CPU model and thread count, and versions.

    This is the model card's `machine` block (`measurements.json`), keys as written there: `device`, `cpu`,
    `cpu_count`, `torch_threads`, `platform` (terse), `python`, `torch`, `gpu` (CUDA only) and the installed
    versions of `LIBRARIES` under their distribution names.
    """
    device = torch.device(device)
    info = {
        "device": str(device),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    info.update({name: version for name in LIBRARIES if (version := _version(name)) is not None})
    return info


def environment(device: torch.device, num_processes: int, machine: str | None = None) -> dict:
    """The benchmark's / gallery's record of the machine: `machine_description` plus the process count, the full
    platform string, CUDA and Accelerate versions and the date (keys as in the committed results.json files)."""
    device = torch.device(device)
    info = machine_description(device)
    name = info.get("gpu") or f"{info['cpu']} ({info['cpu_count']} logical cores)"
    return {
        "machine": machine or (f"{num_processes}× {name}" if num_processes > 1 and device.type == "cuda" else name),
        "device_type": device.type,
        "device_name": name,
        "cpu": info["cpu"],
        "cpu_count": info["cpu_count"],
        "torch_num_threads": info["torch_threads"],
        "num_processes": num_processes,
        "python": info["python"],
        "platform": platform.platform(),
        "torch": info["torch"],
        "cuda": torch.version.cuda,
        "diffusers": info.get("diffusers"),
        "optimum_quanto": info.get("optimum-quanto"),
        "accelerate": _version("accelerate"),
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    }
