"""The one place that knows how to pick a device, wait for it, free it and read its memory."""

from __future__ import annotations

import gc
import resource

import torch


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device | str) -> torch.dtype:
    """bf16 where the hardware has it fast (CUDA); fp32 on CPU, where bf16 matmuls are slow and less exact."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def sync(device: torch.device | str | None = None) -> None:
    """Wait for queued GPU work so wall-clock timers measure it (no-op on CPU)."""
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize(device)


def free_memory() -> None:
    """Drop unreachable tensors and hand cached CUDA blocks back, so the next measurement starts clean."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _proc_status(field: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak_memory(device: torch.device) -> None:
    """CUDA: allocator peak. CPU: the kernel's resident-set high-water mark (VmHWM), reset via clear_refs."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def memory_in_use(device: torch.device) -> int:
    """Allocated device memory (CUDA) or resident set size (CPU) right now."""
    if device.type == "cuda":
        return int(torch.cuda.memory_allocated(device))
    return _proc_status("VmRSS") or 0


def peak_memory(device: torch.device) -> tuple[int, str]:
    """The peak since `reset_peak_memory`, and what kind of number it is (allocator vs process RSS)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_memory_allocated"
    peak = _proc_status("VmHWM")
    if peak is not None:
        return peak, "process_peak_rss"
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "process_peak_rss_lifetime"
