"""What a DiT pipeline is made of: the exact DiT-XL/2 / VAE / scheduler configs, the samplers by short name, and
`DiTPipeline` assembly (random-weight architectures included). Which source a string names is `resolver`'s job.

Everything returns a plain `DiTPipeline` so one generation path serves every source.
"""

from __future__ import annotations

import copy

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

from dit_demo.engine.model.labels import imagenet_id2label
from dit_demo.engine.model.names import RANDOM_SOURCES
from dit_demo.errors import InvalidRequestError

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
