"""Train the embedded digits model: a small AutoencoderKL + class-conditional DiT + a CNN judge, all on CPU.

Why: no real DiT weights are reachable offline and a random DiT draws noise, so the project ships its own small
*trained* DiT on scikit-learn's `load_digits`, saved as a stock diffusers `DiTPipeline` folder so the very same
pipeline code path runs it. Usage::

    dit-demo train [--out dit_demo/embedded] [--seed 0] [--dit-steps N] [--vae-steps N] [--classifier-steps N]

(`dit_demo.cli.train`; this module is the library: `train(TrainConfig(...))`.)

Data: the 1,797 8x8 digits, upsampled bilinearly to 16x16, RGB-replicated, scaled to [-1, 1]. A fixed
stratified split (`SPLIT_SEED`, independent of `--seed`): 80 % *train* (VAE, DiT and classifier train on it),
20 % *held-out* (never trained on; the classifier's honest accuracy and the FID reference). Everything is
seeded and runs with `torch.set_num_threads(2)` (`--threads`; results are reproducible for a given thread count:
float reductions split differently across threads). On a machine whose 2 cores are shared with other jobs, 2 threads
can run 20x slower than 1 (OpenMP barriers wait on descheduled threads): use `--threads 1` there.

Writes under `--out`: `digits/` (the DiTPipeline folder, safetensors, plus `training.json`), `classifier/`
(`model.safetensors`, `config.json`, `heldout.safetensors` with the held-out images so that run-time code
needs no scikit-learn).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, DiTPipeline, DiTTransformer2DModel, DPMSolverMultistepScheduler
from diffusers.training_utils import EMAModel
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from dit_demo.embedded.classifier import DIGIT_NAMES, DigitClassifier, save_classifier
from dit_demo.engine.machine import machine_description
from dit_demo.engine.model.resolver import EMBEDDED_MODEL_DIR
from dit_demo.engine.model.sources import assemble_pipeline

SPLIT_SEED = 0
HELDOUT_FRACTION = 0.2
IMAGE_SIZE = 16
NULL_CLASS = 1000  # DiTPipeline hard-codes the unconditional label 1000
BETA_START, BETA_END, TRAIN_TIMESTEPS = 1e-4, 0.02, 1000
ID2LABEL = {str(i): name for i, name in enumerate(DIGIT_NAMES)}
EMBEDDED_DIR = Path(__file__).resolve().parent  # the shipped classifier/ lives here (the pipeline: EMBEDDED_MODEL_DIR)


@dataclass
class DigitSplits:
    """Images (N, 1, 16, 16) float in [0, 1] and labels (N,) int64 for both splits."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    heldout_x: torch.Tensor
    heldout_y: torch.Tensor


def load_digit_splits() -> DigitSplits:
    """scikit-learn's digits, upsampled to 16x16, split 80/20 stratified with a fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False).clamp(0, 1)
    # Quantise to 8 bits once, so the shipped uint8 held-out array is exactly what the classifier was scored on.
    x = (x * 255).round() / 255
    y = torch.from_numpy(digits.target.astype(np.int64))
    idx_train, idx_held = train_test_split(
        np.arange(len(y)), test_size=HELDOUT_FRACTION, stratify=digits.target, random_state=SPLIT_SEED
    )
    idx_train, idx_held = torch.from_numpy(np.sort(idx_train)), torch.from_numpy(np.sort(idx_held))
    return DigitSplits(x[idx_train], y[idx_train], x[idx_held], y[idx_held])


def to_model_space(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) in [0, 1] -> (N, 3, H, W) in [-1, 1]: RGB-replicated so the pipeline emits normal RGB images."""
    return (x * 2 - 1).expand(-1, 3, -1, -1)


def random_shift(
    x: torch.Tensor, generator: torch.Generator, max_px: float = 1.0, max_deg: float = 8.0
) -> torch.Tensor:
    """Small random affine jitter (translation + rotation), so models see a little more than 1,437 exact images."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(max_deg)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (2 * max_px / x.shape[-1])
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def make_vae(image_size: int = IMAGE_SIZE) -> AutoencoderKL:
    """2-block AutoencoderKL: 3xNxN images <-> 4x(N/2)x(N/2) latents (16 -> 8 for the digits, 28 -> 14 for MNIST: as
    many numbers as pixels, nearly lossless)."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=image_size,
    )


def make_transformer(
    latent_channels: int = 4, latent_size: int = 8, *, num_layers: int = 6, heads: int = 4, head_dim: int = 32
) -> DiTTransformer2DModel:
    """Small DiT (6 layers, 4 heads x 32 by default) with DiT's own initialisation, which diffusers does not apply."""
    model = DiTTransformer2DModel(
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        in_channels=latent_channels,
        out_channels=latent_channels,  # epsilon only: DiTPipeline halves output only if out // 2 == in
        num_layers=num_layers,
        sample_size=latent_size,
        patch_size=2,
        num_embeds_ada_norm=1000,
        norm_type="ada_norm_zero",
    )
    for module in model.modules():  # DiT: xavier-uniform linears, zero biases
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    conv = model.pos_embed.proj
    nn.init.xavier_uniform_(conv.weight.view(conv.weight.shape[0], -1))
    nn.init.zeros_(conv.bias)
    for block in model.transformer_blocks:
        emb = block.norm1.emb
        nn.init.normal_(emb.class_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(emb.timestep_embedder.linear_1.weight, std=0.02)
        nn.init.normal_(emb.timestep_embedder.linear_2.weight, std=0.02)
        # adaLN-Zero: every block starts as the identity.
        nn.init.zeros_(block.norm1.linear.weight)
        nn.init.zeros_(block.norm1.linear.bias)
        # diffusers' LabelEmbedding drops labels on its own in train mode, independently in every block; we drop
        # once, consistently, to NULL_CLASS in the training loop instead.
        emb.class_embedder.dropout_prob = 0.0
    for layer in (model.proj_out_1, model.proj_out_2):
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
    return model


def make_scheduler() -> DPMSolverMultistepScheduler:
    """Sampling scheduler with the *same* linear betas as training."""
    return DPMSolverMultistepScheduler(
        num_train_timesteps=TRAIN_TIMESTEPS, beta_start=BETA_START, beta_end=BETA_END, beta_schedule="linear"
    )


def train_vae(data: torch.Tensor, steps: int, seed: int, batch: int = 128, kl_weight: float = 1e-4) -> AutoencoderKL:
    """MSE reconstruction + a small KL term (keeps the latent space smooth and bounded)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    vae = make_vae().train()
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1), eta_min=1e-4)
    bar = tqdm(range(steps), desc="vae", mininterval=2)
    for _ in bar:
        idx = torch.randint(0, data.shape[0], (batch,), generator=gen)
        x = to_model_space(random_shift(data[idx], gen, max_px=0.5, max_deg=5.0))
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=gen)
        recon = vae.decode(z).sample
        rec = F.mse_loss(recon, x)
        kl = posterior.kl().mean() / x[0].numel()
        loss = rec + kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(rec=f"{rec.item():.4f}", kl=f"{kl.item():.3f}", refresh=False)
    return vae.eval()


@torch.no_grad()
def encode(vae: AutoencoderKL, data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of every image, so DiT training samples latents without re-running the encoder."""
    posterior = vae.encode(to_model_space(data)).latent_dist
    return posterior.mean, posterior.std


def train_transformer(
    mean: torch.Tensor,
    std: torch.Tensor,
    labels: torch.Tensor,
    scaling_factor: float,
    steps: int,
    seed: int,
    batch: int = 128,
    lr: float = 5e-4,
    class_dropout: float = 0.1,
    ema_decay: float = 0.999,
) -> DiTTransformer2DModel:
    """epsilon-MSE DDPM training with classifier-free label dropout; returns the EMA weights."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    model = make_transformer(latent_channels=mean.shape[1], latent_size=mean.shape[-1]).train()
    ema = EMAModel(model.parameters(), decay=ema_decay)
    noise_sched = DDPMScheduler(
        num_train_timesteps=TRAIN_TIMESTEPS, beta_start=BETA_START, beta_end=BETA_END, beta_schedule="linear"
    )
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    bar = tqdm(range(steps), desc="dit", mininterval=2)
    running = None
    for _ in bar:
        idx = torch.randint(0, mean.shape[0], (batch,), generator=gen)
        z0 = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen)) * scaling_factor
        y = labels[idx].clone()
        y[torch.rand(batch, generator=gen) < class_dropout] = NULL_CLASS
        t = torch.randint(0, TRAIN_TIMESTEPS, (batch,), generator=gen)
        noise = torch.randn(z0.shape, generator=gen)
        pred = model(noise_sched.add_noise(z0, noise, t), timestep=t, class_labels=y).sample
        loss = F.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema.step(model.parameters())
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        bar.set_postfix(loss=f"{running:.4f}", refresh=False)
    ema.copy_to(model.parameters())
    return model.eval()


def train_classifier(splits: DigitSplits, steps: int, seed: int, batch: int = 128) -> tuple[DigitClassifier, float]:
    """Train on the train split with jitter; return the model and its accuracy on the held-out split."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 2)
    model = DigitClassifier(image_size=IMAGE_SIZE).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=max(steps, 1))
    bar = tqdm(range(steps), desc="classifier", mininterval=2)
    for _ in bar:
        idx = torch.randint(0, splits.train_x.shape[0], (batch,), generator=gen)
        x = random_shift(splits.train_x[idx], gen, max_px=1.0, max_deg=10.0)
        loss = F.cross_entropy(model(x), splits.train_y[idx], label_smoothing=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    model.eval()
    with torch.no_grad():
        accuracy = (model(splits.heldout_x).argmax(1) == splits.heldout_y).float().mean().item()
    return model, accuracy


def folder_size_mb(folder: Path) -> float:
    """Total size of all files under `folder`, in MB (10^6 bytes)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


@dataclass(frozen=True)
class TrainConfig:
    """What `train` does; the defaults are the shipped model's (`dit-demo train` with no options)."""

    out: Path | None = None  # writes out/digits and out/classifier; None: the shipped places (see save_models)
    seed: int = 0
    dit_steps: int = 4000
    vae_steps: int = 500
    classifier_steps: int = 600
    check_samples: int = 100  # generated digits to score at the end (0: skip)
    threads: int = 2  # torch threads; 1 is far faster when other jobs share the 2 cores
    dtype: str = "float16"  # dtype of the saved weights: float16 | float32

    def destinations(self) -> tuple[Path, Path]:
        """(pipeline folder, classifier folder): out/digits and out/classifier, or the shipped places."""
        if self.out is None:
            return EMBEDDED_MODEL_DIR, EMBEDDED_DIR / "classifier"
        return Path(self.out) / "digits", Path(self.out) / "classifier"


def fit_vae(splits: DigitSplits, config: TrainConfig) -> tuple[AutoencoderKL, dict, torch.Tensor, torch.Tensor]:
    """The trained VAE (its scaling factor set from the latents' std), its held-out PSNR and scaling factor, and
    the train split's latent means and stds."""
    vae = train_vae(splits.train_x, config.vae_steps, config.seed)
    with torch.no_grad():
        held = to_model_space(splits.heldout_x)
        recon = vae.decode(vae.encode(held).latent_dist.mean).sample.clamp(-1, 1)
        vae_psnr = (10 * torch.log10(4.0 / F.mse_loss(recon, held))).item()  # peak-to-peak range 2 -> 2^2
    mean, std = encode(vae, splits.train_x)
    sample_std = torch.sqrt(mean.var() + std.pow(2).mean()).item()
    scaling_factor = 1.0 / sample_std
    vae.register_to_config(scaling_factor=scaling_factor)
    print(f"vae: held-out reconstruction PSNR {vae_psnr:.2f} dB, scaling_factor {scaling_factor:.4f}", flush=True)
    return vae, {"psnr_db": vae_psnr, "scaling_factor": scaling_factor}, mean, std


def save_models(
    config: TrainConfig,
    splits: DigitSplits,
    models: tuple[nn.Module, AutoencoderKL, DigitClassifier],
    clf_acc: float,
) -> Path:
    """The DiTPipeline folder (out/digits, returned) and the judge with the held-out digits (out/classifier)."""
    transformer, vae, classifier = models
    # .half()/.float() rather than .to(dtype): diffusers' ModelMixin.to warns on any dtype cast.
    cast = (lambda m: m.half()) if config.dtype == "float16" else (lambda m: m.float())
    pipe = assemble_pipeline(cast(transformer), cast(vae), make_scheduler(), ID2LABEL)
    out_pipe, out_clf = config.destinations()
    pipe.save_pretrained(out_pipe, safe_serialization=True)
    save_classifier(
        classifier,
        out_clf,
        extra={
            "trained_on": "train split (80 %, stratified, SPLIT_SEED=0) of sklearn load_digits, 16x16",
            "evaluated_on": "held-out split (20 %), shipped as heldout.safetensors",
            "heldout_accuracy": round(clf_acc, 4),
        },
    )
    held_u8 = (splits.heldout_x[:, 0] * 255).round().to(torch.uint8).contiguous()
    save_file({"images": held_u8, "labels": splits.heldout_y.contiguous()}, str(out_clf / "heldout.safetensors"))
    return out_pipe


def train(config: TrainConfig = TrainConfig()) -> dict:
    """Train the judge, the VAE and the DiT, save them under `config.out`; returns the training summary that it
    also writes to `digits/training.json`."""
    if config.dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be float16 or float32, got {config.dtype!r}")
    torch.set_num_threads(config.threads)
    torch.set_flush_denormal(True)  # denormals from the zero-initialised adaLN layers made CPU steps ~3x slower
    torch.manual_seed(config.seed)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    splits = load_digit_splits()

    t0 = time.perf_counter()
    classifier, clf_acc = train_classifier(splits, config.classifier_steps, config.seed)
    timings["classifier_s"] = time.perf_counter() - t0
    print(f"classifier: held-out real-digit accuracy {clf_acc:.4f}", flush=True)

    t0 = time.perf_counter()
    vae, vae_fit, mean, std = fit_vae(splits, config)
    timings["vae_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    scaling_factor = vae_fit["scaling_factor"]
    transformer = train_transformer(mean, std, splits.train_y, scaling_factor, config.dit_steps, config.seed)
    timings["dit_s"] = time.perf_counter() - t0
    out_pipe = save_models(config, splits, (transformer, vae, classifier), clf_acc)

    check_acc = None
    if config.check_samples > 0:
        check_acc = quick_check(out_pipe, classifier, config.check_samples, seed=config.seed)
        print(f"check: class accuracy of {config.check_samples} generated digits at guidance 4: {check_acc:.4f}")

    timings["total_s"] = time.perf_counter() - t_start
    machine = machine_description("cpu")
    summary = {
        "seed": config.seed,
        "steps": {"dit": config.dit_steps, "vae": config.vae_steps, "classifier": config.classifier_steps},
        "split": {"seed": SPLIT_SEED, "train": len(splits.train_y), "heldout": len(splits.heldout_y)},
        "classifier_heldout_accuracy": round(clf_acc, 4),
        "vae_heldout_psnr_db": round(vae_fit["psnr_db"], 2),
        "scaling_factor": scaling_factor,
        "check_accuracy_guidance4": None if check_acc is None else round(check_acc, 4),
        "parameters": {
            "transformer": sum(p.numel() for p in transformer.parameters()),
            "vae": sum(p.numel() for p in vae.parameters()),
            "classifier": sum(p.numel() for p in classifier.parameters()),
        },
        "saved_dtype": config.dtype,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "machine": f"{machine['cpu']}, {machine['torch_threads']} threads, torch {machine['torch']}",
        "date": time.strftime("%Y-%m-%d"),
    }
    (out_pipe / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    summary["pipeline_mb"] = round(folder_size_mb(out_pipe), 2)
    print(json.dumps(summary, indent=2))
    return summary


@torch.no_grad()
def quick_check(folder: Path, classifier: DigitClassifier, n: int, seed: int) -> float:
    """Reload the saved folder exactly as users will and score n generated digits (guidance 4, 25 steps)."""
    pipe = DiTPipeline.from_pretrained(folder, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    labels = [i % 10 for i in range(n)]
    gen = torch.Generator().manual_seed(seed)
    images = pipe(labels, guidance_scale=4.0, num_inference_steps=25, generator=gen, output_type="pt").images
    gray = images.mean(1, keepdim=True)
    pred = classifier(gray).argmax(1)
    return (pred == torch.tensor(labels)).float().mean().item()
