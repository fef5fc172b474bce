"""A sampler's update as per-step numbers, so the whole denoising step can run on the GPU with no host work.

Every scheduler this project offers is, with its default settings, *linear* in what it is given: each update is a
fixed combination of the current latent, the guided noise prediction and the one step before them (DPM-Solver++
2M keeps one earlier prediction; Euler and DDIM with eta = 0 keep none). So instead of re-implementing each sampler,
`linear_recurrence` runs the real diffusers scheduler once in float64 on random vectors, exactly as `DiTPipeline`
drives it (scale_model_input, then step on the scaled input), and fits per step

    input_i  = s_i · x_i                                   (what the transformer and `step` see)
    x_{i+1}  = a_i · x_i + b_i · ε_i + c_i · x_{i-1} + d_i · ε_{i-1}

by least squares. A second run on fresh vectors a thousand times larger checks the fit: a sampler that clamps
(DDIM's default `clip_sample`), thresholds or adds noise is not linear, fails the check and is reported as not
capturable (the caller then runs the plain pipeline).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

PROBE_DIM = 64
FIT_TOLERANCE = 1e-5  # relative; Euler upcasts to float32 internally, so its fit is exact only to ~1e-7
HISTORY = 4  # a, b, c, d


class NotCapturable(RuntimeError):
    """The sampler cannot be expressed as a fixed per-step recurrence (the plain pipeline runs instead)."""


@dataclass(frozen=True)
class Recurrence:
    """Per-step numbers of one (scheduler, steps) pair: `coefficients[i] = (s, a, b, c, d)` and the timesteps the
    transformer sees."""

    timesteps: torch.Tensor  # [steps], the scheduler's own dtype (int64 for DPM/DDIM, float32 for Euler)
    coefficients: torch.Tensor  # [steps, 5] float64

    @property
    def steps(self) -> int:
        return len(self.timesteps)


def _fresh(scheduler, steps: int):
    fresh = type(scheduler).from_config(copy.deepcopy(dict(scheduler.config)))
    fresh.set_timesteps(steps)
    return fresh


def _trajectory(scheduler, steps: int, scale: float, seed: int) -> tuple[list, list, list, list]:
    """Run the real scheduler as DiTPipeline does: returns x_i, s_i, ε_i and x_{i+1} for every step."""
    sched = _fresh(scheduler, steps)
    generator = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(PROBE_DIM, generator=generator, dtype=torch.float64)
    xs, scales, eps_list, nexts = [], [], [], []
    for t in sched.timesteps:
        scaled = sched.scale_model_input(x, t)
        ratio = scaled / x
        if not torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=FIT_TOLERANCE, atol=0):
            raise NotCapturable(f"{type(scheduler).__name__}.scale_model_input is not a plain rescaling")
        eps = scale * torch.randn(PROBE_DIM, generator=generator, dtype=torch.float64)
        following = sched.step(eps, t, scaled).prev_sample.to(torch.float64)
        xs.append(x)
        scales.append(float(ratio[0]))
        eps_list.append(eps)
        nexts.append(following)
        x = following
    return xs, scales, eps_list, nexts


def _basis(xs: list, eps_list: list, i: int) -> torch.Tensor:
    zero = torch.zeros_like(xs[i])
    previous = (xs[i - 1], eps_list[i - 1]) if i > 0 else (zero, zero)
    return torch.stack([xs[i], eps_list[i], *previous], dim=1)


def _replay(coefficients: torch.Tensor, xs: list, eps_list: list) -> list:
    """The recurrence driven by a recorded trajectory's ε: the x_{i+1} it predicts, step by step (from its own x)."""
    x, x_prev, eps_prev = xs[0], torch.zeros_like(xs[0]), torch.zeros_like(xs[0])
    out = []
    for i, eps in enumerate(eps_list):
        _, a, b, c, d = coefficients[i].tolist()
        x, x_prev, eps_prev = a * x + b * eps + c * x_prev + d * eps_prev, x, eps
        out.append(x)
    return out


def _relative_error(got: list, want: list) -> float:
    return max(float((g - w).norm() / w.norm().clamp_min(1e-300)) for g, w in zip(got, want))


def _fit(basis: torch.Tensor, target: torch.Tensor) -> tuple[list[float], float]:
    """Least squares on unit-norm columns (so a rank-deficient step picks small, well-scaled coefficients)."""
    norms = basis.norm(dim=0).clamp_min(1e-300)
    solution = torch.linalg.lstsq(basis / norms, target.unsqueeze(1), driver="gelsd").solution.squeeze(1) / norms
    residual = float((basis @ solution - target).norm() / target.norm().clamp_min(1e-300))
    return solution.tolist(), residual


def _step_coefficients(xs: list, eps_list: list, nexts: list, i: int) -> list[float]:
    """(a, b, c, d) of step i: the two-term form when it fits (first-order steps), else all four."""
    basis = _basis(xs, eps_list, i)
    short, residual = _fit(basis[:, :2], nexts[i])
    if residual <= FIT_TOLERANCE / 10:
        return [*short, 0.0, 0.0]
    return _fit(basis, nexts[i])[0]


def linear_recurrence(scheduler, steps: int) -> Recurrence:
    """Fit, then check, the per-step recurrence of `scheduler` for `steps` steps (its state is not touched)."""
    xs, scales, eps_list, nexts = _trajectory(scheduler, steps, 1.0, seed=0)
    rows = [[scales[i], *_step_coefficients(xs, eps_list, nexts, i)] for i in range(steps)]
    coefficients = torch.tensor(rows, dtype=torch.float64)
    fitted = _relative_error(_replay(coefficients, xs, eps_list), nexts)
    check = _trajectory(scheduler, steps, 1000.0, seed=1)
    checked = _relative_error(_replay(coefficients, check[0], check[2]), check[3])
    if max(fitted, checked) > FIT_TOLERANCE:
        name = type(scheduler).__name__
        raise NotCapturable(
            f"{name} is not a linear {HISTORY}-term recurrence with this configuration (relative error "
            f"{max(fitted, checked):.1e}; e.g. DDIM's clip_sample clamps): it runs through the plain pipeline"
        )
    return Recurrence(timesteps=_fresh(scheduler, steps).timesteps.clone(), coefficients=coefficients)
