"""Ahead-of-time compiled transformer forwards (torch.export + AOTInductor): no compile inside a request.

`torch.compile` pays 41–90 s of compilation in the first request of every fresh process (DESIGN.md §4b) — longer
than a ZeroGPU call's default 60 s window. Here the transformer forward of a built variant, in its fast form (the
project's int8/fp8 linears, fused QKV, conditioning served from the request's tables: `compile_variant` with
`capture="step"`), is exported for one request shape (batch, guidance on/off, resolution) and compiled by
AOTInductor into a `.pt2` package once, ahead of time. A fresh process builds the same variant, loads the package
and samples through it: the whole denoising step is still captured as one CUDA graph per step around the compiled
forward (`dit_demo.engine.fast.capture`), so the first request pays only graph capture, not compilation.

The package holds code only: the weights stay outside it (`package_constants_in_so=False`) and are handed to the
loaded model as the live variant's own tensors (`load_constants(user_managed=True)`), so GPU memory holds one copy
and a package is a few MiB. Beside `NAME.pt2` a `NAME.json` records what it was built for (recipe, shape, torch,
GPU, the constants' names/shapes/dtypes, the package's sha256); `load_package` checks all of it and refuses a
corrupt, foreign or mismatched package with an error naming the file, before any compiled code is loaded.
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from dit_demo.engine.fast import conditioning
from dit_demo.engine.fast.capture import CapturedDiTPipeline
from dit_demo.engine.fast.compile import compile_variant
from dit_demo.engine.generate import Variant
from dit_demo.errors import CheckpointError, InvalidRequestError

FORMAT = "dit-demo-aot/1"
# Weights outside the package: the loaded model reads the live variant's tensors. "outside" is the minimal form
# (loads on the CPU; segfaulted in a fresh process on the H200, bench/h200-aot run 3); "spaces" is exactly what
# `spaces.aoti_compile` (0.51.3, torch ≥ 2.10) sets: tensor constants kept, no constant folding into the code.
INDUCTOR_CONFIGS = {
    "outside": {"aot_inductor.package_constants_in_so": False},
    "spaces": {
        "aot_inductor.package_constants_in_so": False,
        "aot_inductor.package_constants_on_disk_format": "pickle_weights",
        "always_keep_tensor_constants": True,
        "joint_graph_constant_folding": False,
    },
}
DEFAULT_CONFIGS = "spaces"


class PackageError(CheckpointError):
    """An AOT package that is missing, corrupt, foreign, or built for another variant, shape or torch."""


@dataclass
class PackageInfo:
    """What a package was built for and what building it cost (written beside it as NAME.json)."""

    format: str
    recipe: str
    source: str
    batch: int
    cfg: bool
    rows: int
    sample_size: int
    in_channels: int
    columns: int  # width of the conditioning row (every table's adaLN outputs side by side)
    dtype: str
    device: str
    device_name: str
    torch: str
    label: str  # the fast form's compile label (fused QKV, int8/fp8 linears)
    sha256: str = ""
    package_bytes: int = 0
    export_s: float = 0.0
    compile_s: float = 0.0
    constants: dict[str, list] = field(default_factory=dict)  # fqn -> [shape, dtype]
    configs: str = ""  # which INDUCTOR_CONFIGS built it
    capability: str = ""  # CUDA compute capability the kernels were built for ("9.0" on an H200 or a MIG slice)

    @classmethod
    def read(cls, path: Path) -> PackageInfo:
        meta = sidecar(path)
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r} is not {FORMAT!r}")
            return cls(**data)
        except FileNotFoundError:
            raise PackageError(f"{path}: no {meta.name} beside it; not a package built by dit_demo") from None
        except (ValueError, TypeError) as exc:
            raise PackageError(f"{meta}: not a dit_demo AOT package description ({exc})") from None


def sidecar(path: Path | str) -> Path:
    return Path(path).with_suffix(".json")


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _capability(device: torch.device) -> str:
    """What the compiled kernels need from the GPU (a MIG slice of an H200 reports the card's 9.0)."""
    return "{}.{}".format(*torch.cuda.get_device_capability(device)) if device.type == "cuda" else "cpu"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class TableForward(torch.nn.Module):
    """The transformer forward exactly as the captured step runs it, with the step's conditioning row (`current`)
    as an explicit input instead of a shared buffer — the function that gets exported."""

    def __init__(self, transformer: torch.nn.Module):
        super().__init__()
        self.transformer = transformer
        self.tables = conditioning.install_tables(transformer)  # a plain list: not registered twice

    def forward(self, hidden_states, timestep, class_labels, current):
        conditioning.activate(self.tables, current)
        try:
            return self.transformer(hidden_states, timestep=timestep, class_labels=class_labels).sample
        finally:
            conditioning.activate(self.tables, None)


def fast_form(variant: Variant, *, inplace: bool = True) -> Variant:
    """The variant's step-capture fast form without Inductor (fast linears, fused QKV, conditioning tables); what
    both the build and the loading process run. Idempotent. The int8 linears stay on plain ops (`kernel="torch"`):
    a package is built on one GPU and loaded on another (a ZeroGPU MIG slice), where the full H200's per-shape
    kernel table was not measured."""
    if isinstance(variant.pipe, CapturedDiTPipeline):
        return variant
    return compile_variant(variant, mode="none", kernel="torch", capture="step", fuse=True, inplace=inplace)


def example_inputs(variant: Variant, *, batch: int, cfg: bool) -> tuple[torch.Tensor, ...]:
    """Inputs of one step's forward with the request's real shapes (CFG doubles the rows), random but valid."""
    transformer = variant.pipe.transformer
    config, device, dtype = transformer.config, transformer.device, transformer.dtype
    rows = batch * (2 if cfg else 1)
    generator = torch.Generator("cpu").manual_seed(0)
    latent = torch.randn(rows, config.in_channels, config.sample_size, config.sample_size, generator=generator)
    columns = conditioning.total_columns(conditioning.install_tables(transformer))
    current = torch.randn(rows, columns, generator=generator) * 0.1
    return (
        latent.to(device=device, dtype=dtype),
        torch.full((rows,), 500, device=device, dtype=torch.long),
        torch.arange(rows, device=device) % int(config.num_embeds_ada_norm or 1),
        current.to(device=device, dtype=dtype),
    )


def _tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer by name, non-persistent buffers included (DiT's positional table is one)."""
    return {**dict(module.named_parameters()), **dict(module.named_buffers())}


def _constants_spec(module: torch.nn.Module) -> dict[str, list]:
    return {k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in _tensors(module).items()}


@torch.no_grad()
def build_package(
    variant: Variant,
    path: Path | str,
    *,
    batch: int = 1,
    guidance_scale: float = 4.0,
    clear_stack: bool = True,
    configs: str = DEFAULT_CONFIGS,
) -> PackageInfo:
    """Export the variant's fast transformer forward for (batch, guidance on/off) and compile it with AOTInductor
    into `path` (a `.pt2`; `NAME.json` beside it). Turns the variant into its fast form in place. Minutes on a GPU
    host (torch.export seconds, AOTInductor 1–2 min); run it ahead of time, not in a request. `clear_stack=False`
    keeps the library's executable-stack flag (only to reproduce the load failure it causes); `configs` names the
    Inductor settings (`INDUCTOR_CONFIGS`)."""
    path = Path(path)
    if path.suffix != ".pt2":
        raise InvalidRequestError(f"package path {path} must end in .pt2")
    if batch < 1:
        raise InvalidRequestError(f"batch must be ≥ 1, got {batch}")
    variant = fast_form(variant)
    transformer = variant.pipe.transformer
    cfg = guidance_scale > 1
    module = TableForward(transformer).eval()
    inputs = example_inputs(variant, batch=batch, cfg=cfg)
    start = time.perf_counter()
    exported = torch.export.export(module, inputs, strict=False)
    export_s = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if configs not in INDUCTOR_CONFIGS:
        raise InvalidRequestError(f"configs must be one of {', '.join(INDUCTOR_CONFIGS)}, got {configs!r}")
    _compile_and_package(exported, path, clear_stack=clear_stack, configs=configs)
    compile_s = time.perf_counter() - start
    device = transformer.device
    info = PackageInfo(
        format=FORMAT,
        recipe=variant.recipe,
        source=variant.source,
        batch=batch,
        cfg=cfg,
        rows=inputs[0].shape[0],
        sample_size=int(transformer.config.sample_size),
        in_channels=int(transformer.config.in_channels),
        columns=int(inputs[3].shape[1]),
        dtype=str(transformer.dtype).replace("torch.", ""),
        device=device.type,
        device_name=_device_name(device),
        capability=_capability(device),
        configs=configs,
        torch=torch.__version__,
        label=variant.compile_mode.removeprefix("none"),
        sha256=_sha256(path),
        package_bytes=path.stat().st_size,
        export_s=round(export_s, 3),
        compile_s=round(compile_s, 3),
        constants=_constants_spec(module),
    )
    sidecar(path).write_text(json.dumps(asdict(info), indent=1) + "\n", encoding="utf-8")
    return info


ELF_MAGIC = b"\x7fELF\x02\x01"  # 64-bit little-endian
PT_GNU_STACK, PF_X = 0x6474E551, 0x1


def clear_execstack(path: Path) -> bool:
    """Drop the executable-stack flag of a 64-bit ELF library in place (as `spaces.aoti_compile` does); True when it
    was set. AOTInductor links its kernels into the wrapper `.so` with a PT_GNU_STACK entry that asks for an
    executable stack; dlopen then has to make every thread's stack executable, which hardened hosts refuse."""
    with path.open("r+b") as handle:
        data = bytearray(handle.read(64))
        if data[:6] != ELF_MAGIC:
            raise PackageError(f"{path}: not a 64-bit ELF library")
        offset, size, count = (struct.unpack_from(f, data, o)[0] for f, o in (("<Q", 32), ("<H", 54), ("<H", 56)))
        for index in range(count):
            handle.seek(offset + index * size)
            kind, flags = struct.unpack("<II", handle.read(8))
            if kind == PT_GNU_STACK and flags & PF_X:
                handle.seek(offset + index * size + 4)
                handle.write(struct.pack("<I", flags & ~PF_X))
                return True
    return False


def _compile_and_package(exported, path: Path, *, clear_stack: bool, configs: str = DEFAULT_CONFIGS) -> None:
    """`torch._inductor.aoti_compile_and_package`, with the library's stack flag cleared before packaging."""
    from torch._inductor.package import package_aoti

    args, kwargs = exported.example_inputs
    configs = {**INDUCTOR_CONFIGS[configs], "aot_inductor.package": True}
    files = torch._inductor.aot_compile(exported.module(), args, kwargs, options=configs)
    files = [file for file in files if isinstance(file, str)]
    for file in files:
        if clear_stack and file.endswith(".so"):
            clear_execstack(Path(file))
    package_aoti(str(path), files)


def check_package(path: Path | str, variant: Variant) -> PackageInfo:
    """Refuse (PackageError naming the file) a package that is missing, corrupt, foreign, or built for another
    recipe, dtype, resolution, device type or torch than `variant` in this process; returns its description."""
    path = Path(path)
    if not path.is_file():
        raise PackageError(f"{path}: no such AOT package file")
    info = PackageInfo.read(path)
    if not zipfile.is_zipfile(path) or _sha256(path) != info.sha256:
        raise PackageError(f"{path}: corrupt or replaced (its sha256 differs from {sidecar(path).name})")
    transformer = variant.pipe.transformer
    expected = {
        "recipe": variant.recipe,
        "dtype": str(transformer.dtype).replace("torch.", ""),
        "sample_size": int(transformer.config.sample_size),
        "device": transformer.device.type,
        "torch": torch.__version__,
    }
    if info.capability:  # packages from before this field: the loader's own check is all there is
        expected["capability"] = _capability(transformer.device)
    for key, value in expected.items():
        if getattr(info, key) != value:
            raise PackageError(f"{path}: built for {key}={getattr(info, key)!r}, this variant has {value!r}")
    return info


class AotForward:
    """The loaded package as the step's forward: (latent, timestep, labels, conditioning row) → model output."""

    def __init__(self, compiled, info: PackageInfo, path: Path, constants: dict[str, torch.Tensor]):
        self.compiled = compiled
        self.info = info
        self.path = path
        self.constants = constants  # kept alive: the loaded model reads these tensors in place (user-managed)
        self.dtype = getattr(torch, info.dtype)

    def __call__(self, hidden_states, timestep, class_labels, current) -> torch.Tensor:
        if hidden_states.device.type != self.info.device or hidden_states.dtype != self.dtype:
            # AOTInductor does not check its inputs: a CPU or float32 tensor here would crash the process
            raise InvalidRequestError(
                f"{self.path.name} runs {self.info.dtype} on {self.info.device}, got {hidden_states.dtype} on "
                f"{hidden_states.device.type}"
            )
        if hidden_states.shape[0] != self.info.rows:
            raise InvalidRequestError(
                f"{self.path.name} was built for {self.info.rows} rows per forward, the request has "
                f"{hidden_states.shape[0]}: build a package for this batch"
            )
        # the compiled code assumes the example inputs' dtypes and dense strides (the step expands its timestep)
        timestep = timestep.to(torch.long).contiguous()
        return self.compiled(hidden_states.contiguous(), timestep, class_labels.contiguous(), current.contiguous())


def _constants(module: torch.nn.Module, needed: list[str], info: PackageInfo, path: Path) -> dict[str, torch.Tensor]:
    state = _tensors(module)
    missing = [name for name in needed if name not in state]
    if missing:
        raise PackageError(f"{path}: needs weights this variant lacks: {', '.join(missing[:3])}")
    for name in needed:
        shape, dtype = info.constants.get(name, [None, None])
        tensor = state[name]
        if [list(tensor.shape), str(tensor.dtype).replace("torch.", "")] != [shape, dtype]:
            raise PackageError(f"{path}: weight {name} is {shape} {dtype} there, {list(tensor.shape)} here")
    return {name: state[name] for name in needed}


def open_package(path: Path, *, single_threaded: bool):
    """The package's compiled model, opened by AOTInductor's own loader without `aoti_load_package`'s CPU probe.

    torch 2.11's `aoti_load_package` first collects "device information" for a mismatch warning, and that picks
    the CPU's vector ISA by compiling a probe library per ISA and loading each in a child `python -c "import
    torch; ..."` with no timeout; on the H200 host that child never returned (45 s, bench/h200-aot run 2) — torch
    2.13 bounds the same probe by 60 s because it "hung in CI". The information is only used for that warning (a
    CUDA package does not run CPU kernels), and `check_package` already refuses a package built for another GPU
    type, torch or shape, so the loader is opened directly, as `aoti_load_package` itself does for old packages.
    """
    from torch.export.pt2_archive._package import AOTICompiledModel

    loader = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", single_threaded, 1, -1)
    return AOTICompiledModel(loader)


@torch.no_grad()
def load_package(variant: Variant, path: Path | str, *, graphs: bool = True, warm: bool = True) -> Variant:
    """Make `variant` sample through the package at `path` (checked first), in place: its fast form, the package's
    compiled forward inside the captured step. No compilation happens; `warm` runs the forward once on example
    inputs (loads its GPU kernels), and the first request captures CUDA graphs (`graphs=False`: eager steps around
    the compiled forward). Returns the variant (`compile_mode` starts "aot")."""
    path = Path(path)
    info = check_package(path, variant)
    try:
        compiled = open_package(path, single_threaded=graphs)
        needed = list(compiled.get_constant_fqns())
    except Exception as exc:  # noqa: BLE001 - the loader raises RuntimeError, KeyError, zip errors... name the file
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise PackageError(f"{path}: AOTInductor could not load it ({detail})") from None
    variant = fast_form(variant)
    module = TableForward(variant.pipe.transformer)
    constants = _constants(module, needed, info, path)
    compiled.load_constants(constants, check_full_update=True, user_managed=True)
    sampler = variant.pipe.sampler
    sampler.graphs = graphs and sampler.graphs
    forward = AotForward(compiled, info, path, constants)
    sampler.set_forward(forward)
    if warm:
        forward(*example_inputs(variant, batch=info.batch, cfg=info.cfg))
    variant.compile_mode = "aot" + (info.label if graphs else info.label.replace("+step-graph", "+step"))
    variant.warmup_s = None
    return variant


def unload_package(variant: Variant) -> None:
    """Back to the variant's own (eager) forward inside the step."""
    sampler = getattr(variant.pipe, "sampler", None)
    if sampler is not None:
        sampler.set_forward(None)
