"""Run an app under the REAL `spaces` 0.51.3 in ZeroGPU mode on a CPU machine: `python zerogpu_harness.py APP [ARGS]`.

Test-only, and only torch, stdlib and `spaces` (it also runs in a Space's fresh venv). What it adds, each named:
  * `cuda_build_shim`: `import spaces` needs a CUDA build of torch (`torch.version.cuda`, `torch._C._cuda_init`, a
    picklable `torch.cuda._is_in_bad_fork`); a CPU build lacks those three attributes. Set for the import only
    (the version string), nothing else of torch is touched in the main process: `spaces` patches it itself.
  * `host_as_device` (with HARNESS_HOST_DEVICE=1): in the forked worker only, where `spaces` would now copy the
    packed tensors to the GPU, host memory stands in for the device (`.cuda()` copies on the host, `.to("cuda")`
    and `device="cuda"` mean the CPU, pinned buffers are page-aligned host copies). Everything around it is
    `spaces`' own: the fork, the pickled arguments and result, the packing to disk and reading back (O_DIRECT),
    `fake.data = ...`. Without it the worker stops in `spaces.zero.torch.init` (`torch.Tensor([0]).cuda()`):
    where CUDA is truly needed.
  * a report (HARNESS_REPORT, JSON lines): what was packed (bytes hash per tensor, before packing), what the worker
    sees after `spaces`' move (the same tensor objects, by id, with the same bytes), and every pickled payload
    `spaces` puts on its queues (kind and size).
The device API itself (SPACES_ZERO_DEVICE_API_URL) is `DeviceApi` in tests/app/zerogpu_device_api.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import sys

import torch


def _cuda_init() -> None:
    raise AssertionError("Torch not compiled with CUDA enabled")  # what a CUDA build says without a GPU driver


def _not_in_bad_fork() -> bool:
    return False


def cuda_build_shim() -> None:
    """`import spaces` with a CPU torch: the three attributes a CUDA build has (see the module docstring)."""
    if torch.version.cuda is not None:
        import spaces  # noqa: F401

        return
    if not hasattr(torch._C, "_cuda_init"):
        torch._C._cuda_init = _cuda_init
    torch.cuda._is_in_bad_fork = _not_in_bad_fork  # a CPU build's is a lambda: it cannot go through a fork pool
    torch.version.cuda = "12.8"  # spaces.zero.torch.static reads it once, at import
    try:
        import spaces  # noqa: F401
    finally:
        torch.version.cuda = None


def _host(value):
    if isinstance(value, (str, torch.device)) and torch.device(value).type == "cuda":
        return torch.device("cpu")
    return value


def _page_aligned_copy(self: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """Pinned memory is page-aligned, and `spaces` reads its pack into it with O_DIRECT, which needs that."""
    from spaces.zero.torch.utils import empty_like_raw_alloc  # mmap-backed: page-aligned

    return empty_like_raw_alloc(self).copy_(self)


def host_as_device() -> None:
    """In the worker: host memory where the GPU would be (see the module docstring)."""
    real_to, real_tensor, real_empty = torch.Tensor.to, torch.tensor, torch.empty

    def to(self, *args, **kwargs):
        if "device" in kwargs:
            kwargs["device"] = _host(kwargs["device"])
        return real_to(self, *[_host(a) for a in args], **kwargs)

    def factory(real):
        def make(*args, **kwargs):
            if "device" in kwargs:
                kwargs["device"] = _host(kwargs["device"])
            return real(*args, **kwargs)

        return make

    torch.Tensor.to = to
    torch.Tensor.cuda = lambda self, *args, **kwargs: self.clone()
    torch.Tensor.pin_memory = _page_aligned_copy
    torch.tensor, torch.empty = factory(real_tensor), factory(real_empty)
    torch.cuda.synchronize = lambda *args, **kwargs: None


def _digest(tensor: torch.Tensor) -> str:
    return hashlib.sha1(tensor.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes()).hexdigest()


def _report(path: str | None, **event) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"pid": os.getpid(), **event}) + "\n")


def _reference_tensors() -> list[torch.Tensor]:
    """The app's start-up reference (transformer + VAE), as `dit_demo.app.zerogpu.STATE` holds it in this process."""
    zerogpu = sys.modules.get("dit_demo.app.zerogpu")
    service = getattr(getattr(zerogpu, "STATE", None), "service", None)
    if service is None:
        return []
    for key in service.cache.keys():
        if key[1] == service.cache.REFERENCE_KEY:
            pipe = service.cache.reference(key[0]).pipe
            return [t for m in (pipe.transformer, pipe.vae) for t in (*m.parameters(), *m.buffers())]
    return []


def instrument(report: str | None, host_device: bool) -> None:
    """Wrap `spaces`' pack (main), init and move (worker) and its queue's put (both) to report what they did."""
    import multiprocessing.reduction

    from spaces import utils as spaces_utils
    from spaces.zero import torch as zero_torch
    from spaces.zero.torch import patching

    digests: dict[int, str] = {}
    real_pack, real_init, real_move, real_put = zero_torch.pack, zero_torch.init, zero_torch.move, None

    def pack():
        originals = [(fake, o) for fake, o in patching.cuda_aliases.items() if o is not None]
        digests.update({id(fake): _digest(o) for fake, o in originals})
        size = real_pack()
        _report(report, event="pack", tensors=len(originals), bytes=size)
        return size

    def init(nvidia_uuid: str):
        if host_device:
            host_as_device()
        return real_init(nvidia_uuid)

    def move(callback=None):
        real_move(callback=callback)
        fakes = list(patching.cuda_aliases.keys())
        same = sum(1 for f in fakes if digests.get(id(f)) == _digest(f))
        packed_ids = {id(f) for f in fakes}
        reference = _reference_tensors()
        _report(
            report,
            event="move",
            fakes=len(fakes),
            same_bytes=same,
            reference_tensors=len(reference),
            reference_packed=sum(1 for t in reference if id(t) in packed_ids),
        )

    real_put = spaces_utils.SimpleQueue.put

    def put(self, obj):
        size = len(multiprocessing.reduction.ForkingPickler.dumps(obj))
        kind = type(obj).__name__ if not isinstance(obj, tuple) else "arguments"
        _report(report, event="put", kind=kind, bytes=size)
        return real_put(self, obj)

    zero_torch.pack, zero_torch.init, zero_torch.move = pack, init, move
    spaces_utils.SimpleQueue.put = put


def main(argv: list[str]) -> None:
    app, *args = argv
    cuda_build_shim()
    instrument(os.environ.get("HARNESS_REPORT"), os.environ.get("HARNESS_HOST_DEVICE") == "1")
    sys.argv = [app, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(app)))
    runpy.run_path(app, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
