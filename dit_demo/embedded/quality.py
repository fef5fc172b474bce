"""Quality of generated digits, judged by the shipped CNN: class accuracy and a classifier-feature FID.

Why this and not Inception-FID: Inception weights need a download (none here) and 16x16 digits are far from
ImageNet. The judge (`classifier.py`) was trained on the train split; the FID reference is the 20 % held-out
split (shipped as `classifier/heldout.safetensors`, so no scikit-learn at run time). The Frechet distance itself
is torchmetrics' `FrechetInceptionDistance` with our module as its `feature` extractor.

Images may be a list of PIL images, a numpy array (N, H, W[, C]) in [0, 1] or uint8, or a torch tensor
(N, C, H, W) in [0, 1]; colour is averaged to gray and anything not 16x16 is resized (antialiased).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from dit_demo.embedded.classifier import CLASSIFIER_DIR, DigitClassifier, load_classifier

ImagesLike = Sequence[Image.Image] | np.ndarray | torch.Tensor
HELDOUT_FILE = CLASSIFIER_DIR / "heldout.safetensors"


@functools.lru_cache(maxsize=4)
def _cached_classifier(path: str | None) -> DigitClassifier:
    model = load_classifier(path)
    model.requires_grad_(False)
    return model


def get_classifier(path: str | Path | None = None) -> DigitClassifier:
    """The shipped classifier (cached per process, eval mode, no grads)."""
    return _cached_classifier(None if path is None else str(path))


def to_digit_tensor(images: ImagesLike, size: int = 16) -> torch.Tensor:
    """Any supported image batch -> float tensor (N, 1, size, size) in [0, 1], the classifier's input."""
    if isinstance(images, torch.Tensor):
        x = images.detach().float().cpu()
        if x.dim() == 3:
            x = x.unsqueeze(1)
    elif isinstance(images, np.ndarray):
        arr = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
        x = torch.from_numpy(arr)
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
    else:
        arrays = []
        for img in images:
            a = np.asarray(img.convert("RGB") if img.mode not in ("L", "RGB") else img, dtype=np.float32) / 255.0
            arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
        if not arrays:
            return torch.zeros(0, 1, size, size)
        x = torch.from_numpy(np.stack(arrays))
    if x.shape[1] != 1:
        x = x[:, :3].mean(1, keepdim=True)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1).contiguous()


@torch.no_grad()
def digit_predictions(images: ImagesLike, classifier: DigitClassifier | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Predicted digit (0-9) and softmax confidence for every image."""
    model = classifier or get_classifier()
    x = to_digit_tensor(images, model.image_size)
    if x.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    probs = model(x).softmax(dim=1)
    conf, pred = probs.max(dim=1)
    return pred.numpy().astype(np.int64), conf.numpy().astype(np.float32)


def class_accuracy(
    images: ImagesLike, labels: Sequence[int] | np.ndarray, classifier: DigitClassifier | None = None
) -> float:
    """Fraction of images the judge classifies as the digit they were generated for."""
    pred, _ = digit_predictions(images, classifier)
    target = np.asarray(labels, dtype=np.int64)
    if pred.shape != target.shape:
        raise ValueError(f"{len(pred)} images but {len(target)} labels")
    return float((pred == target).mean()) if len(target) else float("nan")


def heldout_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 360 held-out real digits (N, 1, 16, 16) in [0, 1] and their labels; never seen by any training."""
    data = load_file(str(HELDOUT_FILE))
    return data["images"].float().unsqueeze(1) / 255.0, data["labels"].long()


class ClassifierFeatures(nn.Module):
    """Feature extractor for torchmetrics' FID: (N, C, H, W) in [0, 1] -> classifier penultimate features.

    Resizes/grays inside, so torchmetrics may feed it any size; `num_features` spares torchmetrics its probe.
    """

    def __init__(self, classifier: DigitClassifier | None = None) -> None:
        super().__init__()
        self.classifier = classifier or get_classifier()
        self.num_features = self.classifier.feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features (N, num_features)."""
        return self.classifier.features(to_digit_tensor(x, self.classifier.image_size))


@torch.no_grad()
def fid(
    generated_images: ImagesLike,
    reference: str | ImagesLike = "heldout",
    classifier: DigitClassifier | None = None,
) -> float:
    """Frechet distance between generated images and a reference set in the classifier's feature space.

    `reference="heldout"` uses the shipped held-out real digits. Lower is better; real held-out digits score 0
    against themselves, and the value depends on sample count, so compare runs of the same size only.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    module = ClassifierFeatures(classifier)
    metric = FrechetInceptionDistance(feature=module, normalize=True, sync_on_compute=False)
    ref = heldout_digits()[0] if isinstance(reference, str) and reference == "heldout" else reference
    if isinstance(ref, str):
        raise ValueError(f"unknown reference {ref!r}; use 'heldout' or pass images")
    metric.update(to_digit_tensor(ref), real=True)
    metric.update(to_digit_tensor(generated_images), real=False)
    return float(metric.compute())
