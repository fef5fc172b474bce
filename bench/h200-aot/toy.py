"""Which AOTInductor package form loads in a fresh process on this GPU? A two-layer toy, one step per process.

    python bench/h200-aot/toy.py build CONFIGS OUT.pt2      # CONFIGS: a key of aot.INDUCTOR_CONFIGS, or "inside"
    python -X faulthandler bench/h200-aot/toy.py load OUT.pt2 [probe] [codecache]

`build` exports a small MLP on CUDA and packages it the project's way (`aot._compile_and_package`: execstack
cleared, weights outside) or, for "inside", with `torch._inductor.aoti_compile_and_package` and its defaults.
`load` runs in a fresh process: opens the package (the project's probe-free loader, or `aoti_load_package` with
`probe`), hands it the same seeded weights when they live outside, runs it and prints one TOY line with the load
time and the largest difference from eager. Run 3 (2026-12-03): the XL/2 bf16 package segfaulted inside
`AOTIModelPackageLoader` itself with the probe bypassed; this separates the package form from the model.
"""

import sys
import time
from pathlib import Path

import torch


class Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = torch.nn.Linear(256, 512)
        self.fc2 = torch.nn.Linear(512, 256)

    def forward(self, x):
        return self.fc2(torch.nn.functional.gelu(self.fc1(x)))


def inputs():
    return (torch.randn(64, 256, generator=torch.Generator().manual_seed(1)).to("cuda", torch.bfloat16),)


def build(configs: str, path: Path) -> None:
    model = Toy().to("cuda", torch.bfloat16).eval()
    exported = torch.export.export(model, inputs())
    start = time.perf_counter()
    if configs == "inside":
        torch._inductor.aoti_compile_and_package(exported, package_path=str(path))
    else:
        from dit_demo.engine.fast import aot

        aot._compile_and_package(exported, path, clear_stack=True, configs=configs)
    print(f"TOY build {configs} {path.name} {time.perf_counter() - start:.1f}s {path.stat().st_size} bytes", flush=True)


def load(path: Path, flags: list[str]) -> None:
    if "codecache" in flags:
        import torch._inductor.codecache  # noqa: F401  (what spaces imports before loading)
    torch.zeros(1, device="cuda")
    start = time.perf_counter()
    if "probe" in flags:
        compiled = torch._inductor.aoti_load_package(str(path))
    else:
        from dit_demo.engine.fast.aot import open_package

        compiled = open_package(path, single_threaded=False)
    load_s = time.perf_counter() - start
    model = Toy().to("cuda", torch.bfloat16).eval()
    needed = list(compiled.get_constant_fqns())
    if needed:
        state = dict(model.named_parameters())
        compiled.load_constants({k: state[k] for k in needed}, check_full_update=True, user_managed=True)
    with torch.no_grad():
        out = compiled(*inputs())
        out = out[0] if isinstance(out, (list, tuple)) else out
        diff = (out.float() - model(*inputs()).float()).abs().max().item()
    print(f"TOY load {path.name} {' '.join(flags)} ok load_s={load_s:.2f} constants={len(needed)} diff={diff:.4f}")


if __name__ == "__main__":
    if sys.argv[1] == "build":
        build(sys.argv[2], Path(sys.argv[3]))
    else:
        load(Path(sys.argv[2]), sys.argv[3:])
