"""Training loops for the 28x28 MNIST model that run on a GPU (bf16 autocast) as well as on the CPU (fp32).

Why separate from `train.py`: the digits loops are CPU-only and byte-reproducible per thread count; these keep all
data, noise and augmentation on the training device (no host round trip per step), read the loss back only every
`log_every` steps (each read waits for the GPU), average weights with a warmed-up foreach EMA, and can stop at a
wall-time deadline (`max_seconds`, for a device call of fixed length) — the steps actually run are returned and
recorded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler
from torch import nn
from torch.optim.swa_utils import AveragedModel

from dit_demo.embedded.classifier import DigitClassifier
from dit_demo.embedded.train import (
    BETA_END,
    BETA_START,
    NULL_CLASS,
    TRAIN_TIMESTEPS,
    make_transformer,
    make_vae,
    random_shift,
    to_model_space,
)

Log = Callable[[str], None]


@dataclass(frozen=True)
class LoopSettings:
    """What every loop shares: device, seed, batch, logging and an optional wall-time limit."""

    device: torch.device
    seed: int = 0
    batch: int = 256
    log_every: int = 500
    max_seconds: float | None = None
    log: Log = print

    def autocast(self):
        """bf16 autocast on CUDA; plain fp32 elsewhere (CPU bf16 autocast is slower than fp32 here)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda")

    def generator(self, offset: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.seed + offset)


@dataclass
class LoopResult:
    """A trained module and how its loop went."""

    model: nn.Module
    steps: int
    seconds: float
    final_loss: float
    losses: list[tuple[int, float]]


def _run(steps: int, settings: LoopSettings, name: str, step_fn: Callable[[], torch.Tensor]) -> tuple:
    """Call `step_fn` (returns the loss tensor) up to `steps` times or until the deadline; (steps, s, losses)."""
    start = time.perf_counter()
    deadline = start + settings.max_seconds if settings.max_seconds else None
    running = torch.zeros((), device=settings.device)
    losses: list[tuple[int, float]] = []
    done = 0
    for step in range(steps):
        running += step_fn().detach()
        done = step + 1
        if done % settings.log_every == 0 or done == steps:
            mean = (running / (done - (losses[-1][0] if losses else 0))).item()
            losses.append((done, mean))
            running.zero_()
            settings.log(f"{name} step {done}/{steps} loss {mean:.5f} {time.perf_counter() - start:.1f}s")
        if deadline is not None and time.perf_counter() > deadline:
            settings.log(f"{name}: wall-time limit {settings.max_seconds:g}s reached after {done} steps")
            break
    if not losses or losses[-1][0] != done:
        seen = done - (losses[-1][0] if losses else 0)
        losses.append((done, (running / max(seen, 1)).item()))
    if settings.device.type == "cuda":
        torch.cuda.synchronize(settings.device)
    return done, time.perf_counter() - start, losses


def fit_classifier(train_x: torch.Tensor, train_y: torch.Tensor, steps: int, settings: LoopSettings) -> LoopResult:
    """The CNN judge on the train split, with ±1 px / 10° jitter and label smoothing (fp32: it is tiny)."""
    torch.manual_seed(settings.seed)
    gen = settings.generator(2)
    model = DigitClassifier(image_size=train_x.shape[-1]).to(settings.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=max(steps, 1))
    jitter_gen = torch.Generator().manual_seed(settings.seed + 4)  # the jitter's angles/shifts: a few numbers, CPU

    def step() -> torch.Tensor:
        idx = torch.randint(0, train_x.shape[0], (settings.batch,), device=settings.device, generator=gen)
        x = random_shift(train_x[idx], jitter_gen, max_px=1.5, max_deg=10.0)
        loss = F.cross_entropy(model(x), train_y[idx], label_smoothing=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched.last_epoch + 1 < sched.total_steps:
            sched.step()
        return loss

    done, seconds, losses = _run(steps, settings, "classifier", step)
    return LoopResult(model.eval(), done, seconds, losses[-1][1], losses)


def fit_vae(train_x: torch.Tensor, steps: int, settings: LoopSettings, kl_weight: float = 1e-4) -> LoopResult:
    """MSE reconstruction + a small KL term (a smooth, bounded latent space), ±0.5 px / 5° jitter."""
    torch.manual_seed(settings.seed)
    gen = settings.generator(0)
    vae = make_vae(train_x.shape[-1]).to(settings.device).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1), eta_min=1e-4)
    jitter_gen = torch.Generator().manual_seed(settings.seed + 5)

    def step() -> torch.Tensor:
        idx = torch.randint(0, train_x.shape[0], (settings.batch,), device=settings.device, generator=gen)
        x = to_model_space(random_shift(train_x[idx], jitter_gen, max_px=0.5, max_deg=5.0))
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, device=x.device, generator=gen)
        loss = F.mse_loss(vae.decode(z).sample, x) + kl_weight * posterior.kl().mean() / x[0].numel()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        return loss

    done, seconds, losses = _run(steps, settings, "vae", step)
    return LoopResult(vae.eval(), done, seconds, losses[-1][1], losses)


@torch.no_grad()
def encode_augmented(vae: AutoencoderKL, x: torch.Tensor, copies: int, seed: int, batch: int = 1000) -> tuple:
    """Posterior means and stds of the images plus `copies - 1` jittered copies (±1 px / 8°): more than 4,500 exact
    images for the DiT at no per-step cost."""
    gen = torch.Generator().manual_seed(seed + 3)
    views = [x] + [random_shift(x, gen, max_px=1.0, max_deg=8.0) for _ in range(copies - 1)]
    means, stds = [], []
    for view in views:
        for chunk in view.split(batch):
            posterior = vae.encode(to_model_space(chunk)).latent_dist
            means.append(posterior.mean)
            stds.append(posterior.std)
    return torch.cat(means), torch.cat(stds)


class WarmupEMA:
    """EMA weights whose decay grows with the updates, min(decay, (1 + n) / (10 + n)), as diffusers' `EMAModel`.

    Why: a fixed 0.9995 keeps 0.9995**n of the random initial weights — still 16 % after the 3,600 steps a 150 s
    device call allowed, enough to turn the samples into noise (the first H200 run). With the warm-up the initial
    weights' share after n updates is below 10 / (10 + n). The count is kept here, not read from the device.
    """

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.updates = 0

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def __call__(self, averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged) -> None:
        """torch's `multi_avg_fn` hook (called from the second update on: the first copies the weights)."""
        self.updates += 1
        torch._foreach_lerp_(averaged, current, 1.0 - self.current_decay())


class WarmupCosine:
    """`LambdaLR` factor: linear warm-up, then a cosine decay to `floor` over the run — its steps, or its wall-time
    limit when that comes first. Why: a run stopped by a device call's deadline should still end at a low learning
    rate (the first H200 runs kept a constant one and stopped mid-descent)."""

    def __init__(self, warmup: int, steps: int, max_seconds: float | None, floor: float) -> None:
        self.warmup, self.steps, self.max_seconds, self.floor = max(warmup, 1), max(steps, 1), max_seconds, floor
        self.start: float | None = None

    def progress(self, step: int) -> float:
        done = step / self.steps
        if self.max_seconds:
            self.start = self.start if self.start is not None else time.perf_counter()
            done = max(done, (time.perf_counter() - self.start) / self.max_seconds)
        return min(done, 1.0)

    def __call__(self, step: int) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * self.progress(step)))
        return min(1.0, (step + 1) / self.warmup) * (self.floor + (1.0 - self.floor) * cosine)


@dataclass(frozen=True)
class DiTSettings:
    """The DiT's size and optimisation (defaults: the shipped MNIST model)."""

    num_layers: int = 8
    heads: int = 4
    head_dim: int = 32
    lr: float = 1e-3
    warmup: int = 500
    final_lr_fraction: float = 0.1  # the cosine decay ends at lr × this
    class_dropout: float = 0.1
    ema_decay: float = 0.9995


def fit_dit(
    latents: tuple[torch.Tensor, torch.Tensor],
    labels: torch.Tensor,
    scaling_factor: float,
    steps: int,
    settings: LoopSettings,
    dit: DiTSettings = DiTSettings(),
    initial: nn.Module | None = None,
) -> LoopResult:
    """epsilon-MSE DDPM training with classifier-free label dropout (once, to label 1000); returns the EMA weights.
    `initial`: a trained transformer to continue from (its EMA starts from its weights) instead of a new one."""
    mean, std = latents
    torch.manual_seed(settings.seed)
    gen = settings.generator(1)
    if initial is None:
        initial = make_transformer(
            mean.shape[1], mean.shape[-1], num_layers=dit.num_layers, heads=dit.heads, head_dim=dit.head_dim
        )
    model = initial.to(settings.device, torch.float32)
    model.train()
    ema = AveragedModel(model, multi_avg_fn=WarmupEMA(dit.ema_decay), use_buffers=False)
    fused = settings.device.type == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=dit.lr, weight_decay=0.0, fused=fused)
    factor = WarmupCosine(dit.warmup, steps, settings.max_seconds, dit.final_lr_fraction)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    ddpm = DDPMScheduler(
        num_train_timesteps=TRAIN_TIMESTEPS, beta_start=BETA_START, beta_end=BETA_END, beta_schedule="linear"
    )
    alphas = ddpm.alphas_cumprod.to(settings.device)
    dev, batch = settings.device, settings.batch

    def step() -> torch.Tensor:
        idx = torch.randint(0, mean.shape[0], (batch,), device=dev, generator=gen)
        z0 = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, device=dev, generator=gen)) * scaling_factor
        y = torch.where(torch.rand(batch, device=dev, generator=gen) < dit.class_dropout, NULL_CLASS, labels[idx])
        t = torch.randint(0, TRAIN_TIMESTEPS, (batch,), device=dev, generator=gen)
        noise = torch.randn(z0.shape, device=dev, generator=gen)
        a = alphas[t].view(-1, 1, 1, 1)
        with settings.autocast():
            pred = model(a.sqrt() * z0 + (1 - a).sqrt() * noise, timestep=t, class_labels=y).sample
        loss = F.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        ema.update_parameters(model)
        return loss

    done, seconds, losses = _run(steps, settings, "dit", step)
    return LoopResult(ema.module.eval(), done, seconds, losses[-1][1], losses)
