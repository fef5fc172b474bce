"""A small CNN that judges generated digits: class accuracy and a feature space for FID.

Why a CNN of our own: the usual Inception features need a download (unavailable offline) and know nothing of
16x16 digits. This network is trained by `dit_demo.embedded.train` on the *train* split of scikit-learn's
`load_digits` (the same 80 % the DiT saw) and evaluated on the 20 % held-out split it never saw, so its
real-digit accuracy is honest. Weights ship as safetensors; nothing here imports scikit-learn.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from dit_demo.engine.model.labels import DIGIT_NAMES

CLASSIFIER_DIR = Path(__file__).resolve().parent / "classifier"  # the 16x16 judge of the digits model
MNIST_CLASSIFIER_DIR = Path(__file__).resolve().parent / "mnist_classifier"  # the 28x28 judge of the MNIST model


class DigitClassifier(nn.Module):
    """Conv net for 1x16x16 grayscale digits in [0, 1]; `features` is the penultimate layer (before ReLU).

    The feature layer is taken before its ReLU so that it is dense (no exact zeros), which keeps the feature
    covariance of a few hundred samples well conditioned for the Frechet distance.
    """

    def __init__(self, image_size: int = 16, num_classes: int = 10, feature_dim: int = 64, width: int = 32) -> None:
        super().__init__()
        self.image_size = image_size
        self.num_classes = num_classes
        self.feature_dim = feature_dim
        self.width = width
        self.trunk = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.embed = nn.Linear(2 * width * (image_size // 4) ** 2, feature_dim)
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(0.3), nn.Linear(feature_dim, num_classes))

    def config(self) -> dict[str, int]:
        """The constructor arguments, written next to the weights as config.json."""
        return {
            "image_size": self.image_size,
            "num_classes": self.num_classes,
            "feature_dim": self.feature_dim,
            "width": self.width,
        }

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate feature vector, (N, feature_dim), for x of shape (N, 1, 16, 16) in [0, 1]."""
        return self.embed(self.trunk(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, (N, num_classes)."""
        return self.head(self.features(x))


def save_classifier(model: DigitClassifier, path: str | Path, extra: dict | None = None) -> None:
    """Write `model.safetensors` + `config.json` into the folder `path` (safetensors only, never pickle)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    config = {**model.config(), "labels": list(DIGIT_NAMES), **(extra or {})}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def load_classifier(path: str | Path | None = None) -> DigitClassifier:
    """Load the shipped classifier (or one from `path`: a folder or its model.safetensors), in eval mode, on CPU."""
    target = Path(path) if path is not None else CLASSIFIER_DIR
    folder = target.parent if target.suffix == ".safetensors" else target
    weights = target if target.suffix == ".safetensors" else folder / "model.safetensors"
    config = json.loads((folder / "config.json").read_text())
    model = DigitClassifier(
        image_size=config["image_size"],
        num_classes=config["num_classes"],
        feature_dim=config["feature_dim"],
        width=config["width"],
    )
    model.load_state_dict(load_file(str(weights)), strict=True)
    return model.eval()
