"""THE recipe registry: every named precision setting, declared once and read by the engine, the app, the CLI, the
reports, the model card and the README test.

Adding a recipe is one `Recipe` entry here plus whatever its implementation needs in engine/quant/quantize.py.
Standard library only (quanto's qtypes are named, and looked up on use), so `dit-demo --help` can list the recipes
without importing torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from dit_demo.errors import InvalidRequestError

# The adaLN modulation and the timestep/class embedders turn (t, y) into per-channel shift/scale/gate: one per-tensor
# int8 scale for their outputs wipes out the conditioning (digits: 20 dB and 3x FID at guidance 1-2), so the w8a8
# recipes keep float activations there and quantize only the weights.
CONDITIONING_LAYERS: tuple[str, ...] = ("transformer_blocks.*.norm1.linear", "transformer_blocks.*.norm1.emb*")

# Patterns relative to the transformer. The final projection is kept in full precision (it writes the noise
# prediction directly) and so is the patch embedding (a tiny Conv2d whose input is the raw latent).
DEFAULT_EXCLUDE: tuple[str, ...] = ("proj_out*", "pos_embed*")
KEEP_GROUPS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "adaln": ("transformer_blocks.*.norm1.linear",),
        "embedders": ("transformer_blocks.*.norm1.emb*",),
        "attention": ("transformer_blocks.*.attn1.*",),
        "mlp": ("transformer_blocks.*.ff.*",),
    }
)

# Where a build note applies: a device type ("cpu", "cuda"), or "cuda-fp8" for a GPU with fp8 tensor cores
# (compute capability 8.9 or newer: Ada, Hopper); "cuda-fp8" falls back to "cuda", anything unlisted to `note`.
FP8_CAPABILITY = (8, 9)


@dataclass(frozen=True)
class Recipe:
    """A named precision setting; `bf16` is the reference every other recipe is compared against."""

    name: str
    label: str  # what a person reads (app choices, tables)
    description: str  # one line: what the recipe does
    weights_type: str | None = None  # optimum.quanto qtype name ("qint8", "qfloat8", "qint4"); None = float
    activations_type: str | None = None  # static calibrated activations; None = float activations
    weights_only: tuple[str, ...] = ()  # layers whose weights are quantized but whose activations stay float
    weights_only_type: str | None = None  # their weight type, when not `weights_type`
    smooth: bool = False  # fold per-channel smoothing into the model first (engine/quant/smoothing.py)
    tags: tuple[str, ...] = ()  # Hub model-card tags
    stock_loadable: bool = False  # stock diffusers' quanto backend loads a saved folder exactly (tests check it)
    note: str | None = None  # what the first build does that takes long, on any device not in `device_notes`
    device_notes: Mapping[str, str] = field(default_factory=dict)  # the same, per device kind (see FP8_CAPABILITY)
    backend: str = "quanto"  # "quanto" (optimum-quanto modules) or "torch-dynamic" (engine/quant/dynamic.py)
    runs_on: tuple[str, ...] = ()  # torch device types it can run on; () = every device
    savable: bool = True  # a saved folder reproduces it (quanto's format); False: rebuilt from a saved model on load

    def runs_here(self, device) -> bool:
        """`device`: a torch.device or its name ("cpu", "cuda:0")."""
        return not self.runs_on or device_type(device) in self.runs_on

    @property
    def quantized(self) -> bool:
        return self.weights_type is not None

    @property
    def needs_calibration(self) -> bool:
        return self.activations_type is not None

    @property
    def activation_kind(self) -> str:
        """What the activations run as, for tables: "float", "int8", "float8" or "int8 (per call)"."""
        if self.backend == "torch-dynamic":
            return "int8 (per call)"
        return "float" if self.activations_type is None else self.activations_type.removeprefix("q")

    @property
    def weights(self):
        """The optimum.quanto qtype of the weights (None: float)."""
        return _qtype(self.weights_type)

    @property
    def activations(self):
        """The optimum.quanto qtype of the activations (None: float)."""
        return _qtype(self.activations_type)

    @property
    def weights_only_qtype(self):
        return _qtype(self.weights_only_type or self.weights_type)

    def build_note(self, device) -> str | None:
        """What the first build will do that takes long, so a UI can say it before doing it."""
        kind = device_kind(device)
        if kind == "cuda-fp8" and kind not in self.device_notes:
            kind = "cuda"
        return self.device_notes.get(kind, self.note)


def _qtype(name: str | None):
    if name is None:
        return None
    from optimum.quanto import qtypes

    return qtypes[name]


def device_type(device) -> str:
    """A torch.device's type or a device name's ("cuda:0" → "cuda"), read without importing torch: the page asks
    what runs here before torch is imported (dit_demo.app.startup)."""
    return getattr(device, "type", None) or str(device).partition(":")[0]


def device_kind(device) -> str:
    """ "cpu", "cuda", "cuda-fp8" (fp8 tensor cores) or another torch device type."""
    if device_type(device) != "cuda":
        return device_type(device)
    import torch

    device = torch.device(device)
    capable = torch.cuda.is_available() and torch.cuda.get_device_capability(device) >= FP8_CAPABILITY
    return "cuda-fp8" if capable else "cuda"


CALIBRATION_NOTE = "{name} calibrates activation ranges by sampling a few classes and seeds first."

RECIPES: Mapping[str, Recipe] = MappingProxyType(
    {
        "bf16": Recipe(
            "bf16",
            label="full precision",
            description="reference: bfloat16 on GPU, float32 on CPU",
            stock_loadable=True,  # a plain diffusers folder
        ),
        "int8": Recipe(
            "int8",
            label="int8 weights",
            description="int8 weights (per-channel scales), activations in the reference dtype",
            weights_type="qint8",
            tags=("int8",),
            stock_loadable=True,
        ),
        "int8-a8": Recipe(
            "int8-a8",
            label="int8 weights + activations",
            description="int8 weights + int8 activations with calibrated static scales",
            weights_type="qint8",
            activations_type="qint8",
            weights_only=CONDITIONING_LAYERS,
            tags=("int8", "w8a8"),
            note=CALIBRATION_NOTE.format(name="int8-a8"),
        ),
        # int8-a8 after SmoothQuant-style channel smoothing chosen per layer on the sampling trajectory and folded
        # into the adaLN modulation, V projection and gates, with trajectory-|max| activation scales.
        "int8-a8-smooth": Recipe(
            "int8-a8-smooth",
            label="int8 weights + activations, smoothed",
            description="int8-a8 with per-channel smoothing folded into adaLN/V/gates, activation scales from the "
            "trajectory",
            weights_type="qint8",
            activations_type="qint8",
            weights_only=CONDITIONING_LAYERS,
            smooth=True,
            tags=("int8", "w8a8", "smoothquant"),
            note="int8-a8-smooth samples the calibration classes at guidance 1, 2 and 4 twice to choose its "
            "smoothing and activation scales first.",
        ),
        "fp8": Recipe(
            "fp8",
            label="fp8 weights",
            description="float8 e4m3 weights",
            weights_type="qfloat8",
            tags=("fp8",),
            stock_loadable=True,
            device_notes={
                "cuda": "fp8 on CUDA JIT-compiles quanto's Marlin kernel on first use (about 2 minutes on an H100)."
            },
        ),
        # Hopper's w8a8: the token layers run fp8 x fp8 on the tensor cores (engine/fast/fp8.py). The conditioning
        # layers keep float activations, as in int8-a8, with int8 weights: quanto would give fp8 weight-only layers
        # its Marlin kernel, a ~2-minute CUDA build, and they run once per request on the fast path anyway.
        "fp8-a8": Recipe(
            "fp8-a8",
            label="fp8 weights + activations",
            description="float8 e4m3 weights (per-channel scales) + static float8 activations, calibrated",
            weights_type="qfloat8",
            activations_type="qfloat8",
            weights_only=CONDITIONING_LAYERS,
            weights_only_type="qint8",
            tags=("fp8", "w8a8"),
            note="fp8-a8: this device has no fp8 tensor cores (CPU, or a GPU older than Ada/Hopper), so it runs "
            "through quanto's emulation (fp8 values upcast to float) - slower than bf16 here; int8 is the faster "
            "choice.",
            device_notes={
                "cuda-fp8": "fp8-a8 calibrates activation ranges first; compiled, it runs fp8 GEMMs on the tensor "
                "cores with the scales and bias inside the GEMM (its outputs are not rounded to fp8 a second time, as "
                "quanto's eager layers do, so compiled images sit a little closer to bf16). On an H200 that beat "
                "compiled bf16 at batch 8 (0.80-0.87x) and matched it at 512x512 batch 1 (bench/h200-w8a16)."
            },
        ),
        "int4": Recipe(
            "int4",
            label="int4 weights",
            description="int4 weights (group-wise scales)",
            weights_type="qint4",
            tags=("int4",),
            stock_loadable=True,
            device_notes={"cpu": "int4 on CPU compiles quanto's C++ extension on first use (about 30-60 s)."},
        ),
        # The CPU's w8a8: PyTorch's dynamic quantization runs int8 x int8 GEMMs (FBGEMM) with each call's activations
        # quantized on the fly; why this library and not torchao: engine/quant/dynamic.py (measured).
        "int8-dynamic": Recipe(
            "int8-dynamic",
            label="int8 dynamic (CPU int8 GEMMs)",
            description="int8 weights + int8 activations quantized per call (PyTorch dynamic quantization, CPU only)",
            weights_type="qint8",
            tags=("int8", "w8a8", "cpu"),
            backend="torch-dynamic",
            runs_on=("cpu",),
            savable=False,
        ),
    }
)
REFERENCE_RECIPE = "bf16"
QUANTIZED_RECIPES: tuple[str, ...] = tuple(name for name in RECIPES if name != REFERENCE_RECIPE)
SAVABLE_RECIPES: tuple[str, ...] = tuple(name for name in QUANTIZED_RECIPES if RECIPES[name].savable)


def recipes_for(device) -> list[str]:
    """The quantized recipes that run on `device` (what an app on that host offers)."""
    return [name for name in QUANTIZED_RECIPES if RECIPES[name].runs_here(device)]


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise InvalidRequestError(f"Unknown recipe {name!r}: choose one of {', '.join(RECIPES)}.")
    return RECIPES[name]
