"""Paired image quality (PSNR, SSIM via torchmetrics) and an amplified difference image for eyes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

ImageLike = Image.Image | np.ndarray | torch.Tensor


def to_tensor(images: ImageLike | Sequence[ImageLike]) -> torch.Tensor:
    """Images → float64 tensor (N, C, H, W) in [0, 1]; uint8 PIL/arrays or float arrays in [0, 1]."""
    if isinstance(images, (Image.Image, np.ndarray, torch.Tensor)) and not (
        isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4
    ):
        images = [images]
    batch = []
    for image in images:
        if isinstance(image, Image.Image):
            array = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
            tensor = torch.from_numpy(array).permute(2, 0, 1)
        else:
            tensor = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
            if tensor.dtype == torch.uint8:
                tensor = tensor.double() / 255.0
            tensor = tensor.double()
            if tensor.ndim == 2:
                tensor = tensor[None]
            elif tensor.shape[-1] in (1, 3) and tensor.shape[0] not in (1, 3):
                tensor = tensor.permute(2, 0, 1)
        batch.append(tensor)
    return torch.stack(batch)


def _paired(
    a: ImageLike | Sequence[ImageLike], b: ImageLike | Sequence[ImageLike]
) -> tuple[torch.Tensor, torch.Tensor]:
    ta, tb = to_tensor(a), to_tensor(b)
    if ta.shape != tb.shape:
        raise ValueError(f"Paired metrics need images of the same shape, got {tuple(ta.shape)} and {tuple(tb.shape)}.")
    return ta, tb


PAIR_CHUNK = 32  # image pairs per torchmetrics call: bounded memory for thousands of 256² images


def _pair_chunks(a, b, device: torch.device | str | None):
    """Paired (N, C, H, W) float64 chunks; lists are converted chunk by chunk (never all images at once)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            raise ValueError(f"Paired metrics need the same number of images, got {len(a)} and {len(b)}.")
        for start in range(0, len(a), PAIR_CHUNK):
            ta, tb = _paired(a[start : start + PAIR_CHUNK], b[start : start + PAIR_CHUNK])
            yield ta.to(device or "cpu"), tb.to(device or "cpu")
        return
    ta, tb = _paired(a, b)
    for start in range(0, len(ta), PAIR_CHUNK):
        yield ta[start : start + PAIR_CHUNK].to(device or "cpu"), tb[start : start + PAIR_CHUNK].to(device or "cpu")


def psnr_values(a, b, device: torch.device | str | None = None) -> list[float]:
    """PSNR in dB of every pair; `inf` where the images are identical (the reference against itself)."""
    values: list[float] = []
    for ta, tb in _pair_chunks(a, b, device):
        same = (ta == tb).flatten(1).all(1).tolist()
        db = peak_signal_noise_ratio(ta, tb, data_range=1.0, reduction="none", dim=(1, 2, 3)).reshape(-1).tolist()
        values += [math.inf if s else float(v) for s, v in zip(same, db)]
    return values


def ssim_values(a, b, device: torch.device | str | None = None) -> list[float]:
    """SSIM of every pair (Gaussian window, shrunk for the 16×16 digits)."""
    values: list[float] = []
    for ta, tb in _pair_chunks(a, b, device):
        side = min(ta.shape[-2:])
        kernel = max(3, min(11, side if side % 2 else side - 1))
        out = structural_similarity_index_measure(ta, tb, data_range=1.0, kernel_size=kernel, reduction="none")
        values += [float(v) for v in out.reshape(-1).tolist()]
    return values


def mean_value(values: Sequence[float]) -> float:
    """The mean of per-pair values (`inf` if any pair is identical for PSNR); NaN for no pairs."""
    return float(np.mean(values)) if len(values) else math.nan


def psnr(a: ImageLike | Sequence[ImageLike], b: ImageLike | Sequence[ImageLike], device=None) -> float:
    """Mean PSNR in dB over pairs; `inf` when the images are identical (the reference against itself)."""
    return mean_value(psnr_values(a, b, device))


def amplified_difference(a: ImageLike, b: ImageLike, gain: float = 8.0) -> Image.Image:
    """|a − b| × gain as an RGB image: where quantization changed the picture, made visible."""
    ta, tb = _paired(a, b)
    diff = ((ta[0] - tb[0]).abs() * gain).clamp(0, 1)
    return Image.fromarray((diff.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def finite_or_none(value: float) -> float | None:
    """JSON has no infinity: identical images are reported as `null` PSNR (meaning "identical")."""
    return None if value is None or not math.isfinite(value) else round(float(value), 4)
