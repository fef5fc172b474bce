"""Where a pipeline comes from: the embedded digits model, a Hub id, a local folder, a pre-quantized
pipeline (detected by `transformer/quanto_qmap.json`), or the exact DiT-XL/2 architecture with random weights.

Everything returns a plain `DiTPipeline` so one generation path serves every source.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DiTPipeline,
    DiTTransformer2DModel,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from .errors import CheckpointError, InvalidRequestError, ModelLoadError
from .labels import imagenet_id2label

EMBEDDED_MODEL_DIR = Path(__file__).parent / "embedded" / "digits"
QMAP_NAME = "quanto_qmap.json"
NULL_CLASS_ID = 1000  # DiTPipeline hard-codes the classifier-free-guidance null class to 1000

SCHEDULERS: dict[str, type[SchedulerMixin]] = {
    "dpm": DPMSolverMultistepScheduler,
    "ddim": DDIMScheduler,
    "euler": EulerDiscreteScheduler,
}

# Exact facebook/DiT-XL-2-{256,512} transformer configs (transformer/config.json of those repos).
DIT_XL_2 = dict(
    num_attention_heads=16,
    attention_head_dim=72,
    in_channels=4,
    out_channels=8,
    num_layers=28,
    dropout=0.0,
    norm_num_groups=32,
    attention_bias=True,
    activation_fn="gelu-approximate",
    num_embeds_ada_norm=1000,
    upcast_attention=False,
    norm_type="ada_norm_zero",
    norm_elementwise_affine=False,
    norm_eps=1e-5,
    patch_size=2,
)
# stabilityai/sd-vae-ft-ema, the VAE the DiT repos ship.
SD_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    scaling_factor=0.18215,
)
DIT_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear")

RANDOM_SOURCES = {"dit-xl-2-256-random": 256, "dit-xl-2-512-random": 512, "tiny-random": 16}
EMBEDDED_ALIASES = {"embedded", "digits", "embedded-digits"}
KNOWN_HUB_MODELS = ("facebook/DiT-XL-2-256", "facebook/DiT-XL-2-512")


@dataclass(frozen=True)
class SourceInfo:
    """What a source string resolved to, for UIs, cards and benchmark records."""

    source: str
    kind: str  # embedded | random | folder | hub
    path: str | None
    prequantized: bool


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device | str) -> torch.dtype:
    """bf16 on GPU (the DiT reference precision there); fp32 on CPU, where bf16 matmuls are slow and lossy."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def make_scheduler(name: str, config: dict | None = None) -> SchedulerMixin:
    """A sampler by short name, configured with the model's own training betas."""
    if name not in SCHEDULERS:
        raise InvalidRequestError(f"Unknown scheduler {name!r}: choose one of {', '.join(SCHEDULERS)}.")
    return SCHEDULERS[name].from_config(dict(config or DIT_SCHEDULER))


def set_scheduler(pipe: DiTPipeline, name: str) -> None:
    """Swap the sampler in place, keeping the betas of the scheduler the pipeline came with."""
    pipe.scheduler = make_scheduler(name, pipe.scheduler.config)


def assemble_pipeline(
    transformer: torch.nn.Module, vae: torch.nn.Module, scheduler: SchedulerMixin, id2label: dict | None
) -> DiTPipeline:
    """A `DiTPipeline` whose class names survive `save_pretrained` (it drops `id2label` unless registered)."""
    id2label = {str(k): v for k, v in (id2label or {}).items()} or None
    pipe = DiTPipeline(transformer=transformer, vae=vae, scheduler=scheduler, id2label=id2label)
    if id2label:
        pipe.register_to_config(id2label=id2label)
    return pipe


def sibling_pipeline(pipe: DiTPipeline, transformer: torch.nn.Module) -> DiTPipeline:
    """Another transformer beside `pipe`'s: shared VAE (never quantized), own scheduler (it keeps per-run state),
    same labels."""
    return assemble_pipeline(transformer, pipe.vae, copy.deepcopy(pipe.scheduler), pipe.config.get("id2label"))


def _tiny_configs() -> tuple[dict, dict]:
    """A DiT and VAE small enough for unit tests (milliseconds per step), same code paths as XL/2."""
    transformer = dict(DIT_XL_2, num_attention_heads=2, attention_head_dim=16, num_layers=2, sample_size=8)
    vae = dict(
        SD_VAE,
        block_out_channels=(32, 32),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=16,
    )
    return transformer, vae


def random_pipeline(name: str, *, device: torch.device, dtype: torch.dtype, seed: int = 0) -> DiTPipeline:
    """The exact DiT-XL/2 (or a tiny) architecture with seeded random weights: GPU benchmarks with no download."""
    resolution = RANDOM_SOURCES[name]
    if name == "tiny-random":
        transformer_cfg, vae_cfg = _tiny_configs()
    else:
        transformer_cfg = dict(DIT_XL_2, sample_size=resolution // 8)
        vae_cfg = dict(SD_VAE, sample_size=resolution)
    torch.manual_seed(seed)
    previous_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build in the target dtype: no fp32 copy of 675 M parameters on the way
    try:
        with torch.device(device):
            transformer = DiTTransformer2DModel(**transformer_cfg)
            vae = AutoencoderKL(**vae_cfg)
    finally:
        torch.set_default_dtype(previous_dtype)
    return assemble_pipeline(transformer.eval(), vae.eval(), make_scheduler("dpm"), imagenet_id2label())


def _read_model_index(folder: Path) -> dict:
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise ModelLoadError(
            f"{folder} is not a diffusers pipeline folder (no model_index.json). Point --model at a folder saved by "
            "`dit_demo` or `DiTPipeline.save_pretrained`, a Hub id such as facebook/DiT-XL-2-256, or 'embedded'."
        )
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{index_file} is not valid JSON ({exc}).") from exc
    if index.get("_class_name") != "DiTPipeline":
        raise CheckpointError(
            f"{folder} holds a {index.get('_class_name', 'unknown')} pipeline, not a DiTPipeline: this demo runs "
            "class-conditional DiT models only."
        )
    return index


def _load_component(cls: type, folder: Path, dtype: torch.dtype) -> torch.nn.Module:
    """diffusers only warns when tensors are missing (and leaves them random): make that an error."""
    model, info = cls.from_pretrained(folder, torch_dtype=dtype, use_safetensors=True, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "mismatched_keys", "unexpected_keys")}
    if problems:
        summary = "; ".join(f"{len(v)} {k.replace('_', ' ')} e.g. {list(v)[:2]}" for k, v in problems.items())
        raise CheckpointError(f"{folder} does not match its config ({summary}). Refusing to run random weights.")
    return model


def load_pipeline_folder(
    folder: str | os.PathLike, *, device: torch.device, dtype: torch.dtype, scheduler: str | None = None
) -> DiTPipeline:
    """Load a complete DiT pipeline folder, plain or pre-quantized, refusing anything that would run random weights."""
    from .serialization import QuantizedDiTTransformer2DModel  # local: serialization imports this module

    folder = Path(folder)
    index = _read_model_index(folder)
    transformer_dir = folder / "transformer"
    try:
        if (transformer_dir / QMAP_NAME).is_file():
            transformer = QuantizedDiTTransformer2DModel.load_module(transformer_dir, device=device, dtype=dtype)
        else:
            transformer = _load_component(DiTTransformer2DModel, transformer_dir, dtype).to(device)
        vae = _load_component(AutoencoderKL, folder / "vae", dtype).to(device)
        sched_cls_name = index.get("scheduler", [None, "DPMSolverMultistepScheduler"])[1]
        sched_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    except ModelLoadError:
        raise
    except Exception as exc:  # diffusers/safetensors raise many types for a broken folder
        raise CheckpointError(f"Could not load the pipeline in {folder}: {type(exc).__name__}: {exc}") from exc
    if transformer.config.num_embeds_ada_norm != NULL_CLASS_ID:
        raise CheckpointError(
            f"{folder}: the transformer has num_embeds_ada_norm={transformer.config.num_embeds_ada_norm}, but "
            f"DiTPipeline uses class {NULL_CLASS_ID} as its guidance null class; train with num_embeds_ada_norm=1000."
        )
    id2label = index.get("id2label") or imagenet_id2label()
    sched_name = scheduler or next(
        (short for short, cls in SCHEDULERS.items() if cls.__name__ == sched_cls_name), "dpm"
    )
    return assemble_pipeline(transformer.eval(), vae.eval(), make_scheduler(sched_name, sched_config), id2label)


def _hub_error(source: str, exc: Exception) -> ModelLoadError:
    reason = (str(exc).splitlines() or [""])[0][:200]
    return ModelLoadError(
        f"Could not load {source!r} from the Hugging Face Hub ({type(exc).__name__}: {reason}). "
        "If the repo is private or gated, set HF_TOKEN; if this machine is offline, download it once elsewhere "
        f"(`hf download {source}`), copy the cache and set HF_HUB_OFFLINE=1; or pass a local pipeline folder. "
        "The embedded digits model ('embedded') always works offline."
    )


def resolve_source(source: str | None) -> SourceInfo:
    """Classify a source string without loading weights (local folders and known names; Hub ids otherwise)."""
    source = (source or "embedded").strip()
    if source in EMBEDDED_ALIASES:
        return SourceInfo(source, "embedded", str(EMBEDDED_MODEL_DIR), False)
    if source in RANDOM_SOURCES:
        return SourceInfo(source, "random", None, False)
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"{source} is a file; give the pipeline folder that holds model_index.json.")
        return SourceInfo(source, "folder", str(path), (path / "transformer" / QMAP_NAME).is_file())
    if source.count("/") != 1 or source.startswith((".", "/", "~")):
        raise ModelLoadError(
            f"Unknown model source {source!r}: not a folder here, not a Hub id (owner/name), and not one of "
            f"{', '.join(sorted(EMBEDDED_ALIASES | set(RANDOM_SOURCES)))}."
        )
    return SourceInfo(source, "hub", None, False)


def download_pipeline(repo_id: str, **kwargs) -> Path:
    """Fetch a pipeline repo's safetensors/json files (never pickles) and return the local snapshot folder."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.md", "*.png"], **kwargs))
    except Exception as exc:  # httpx, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError, ...
        raise _hub_error(repo_id, exc) from exc


def load_pipeline(
    source: str | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    scheduler: str | None = None,
    revision: str | None = None,
) -> DiTPipeline:
    """One call for every source: returns a ready `DiTPipeline` on `device`, in eval mode, with `id2label`."""
    device = torch.device(device) if device is not None else default_device()
    dtype = dtype or default_dtype(device)
    info = resolve_source(source)
    if info.kind == "random":
        pipe = random_pipeline(info.source, device=device, dtype=dtype)
        if scheduler:
            set_scheduler(pipe, scheduler)
        return pipe
    if info.kind == "hub":
        folder = download_pipeline(info.source, revision=revision)
    else:
        folder = Path(info.path)
        if info.kind == "embedded" and not (folder / "model_index.json").is_file():
            raise ModelLoadError(f"The embedded digits model is missing from {folder}; reinstall the project.")
    return load_pipeline_folder(folder, device=device, dtype=dtype, scheduler=scheduler)
