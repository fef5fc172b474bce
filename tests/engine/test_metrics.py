import math

import numpy as np
import pytest
from PIL import Image

from dit_demo.engine.metrics import amplified_difference, finite_or_none, mean_value, psnr, ssim_values


def _noise_image(seed: int, size: int = 32) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def ssim(a, b) -> float:
    return mean_value(ssim_values(a, b))


def test_identical_images():
    image = _noise_image(0)
    assert math.isinf(psnr(image, image))
    assert ssim(image, image) == pytest.approx(1.0)
    assert finite_or_none(psnr(image, image)) is None


def test_psnr_matches_the_definition():
    a = np.full((16, 16, 3), 100, np.uint8)
    b = a.copy()
    b[0, 0, 0] = 110  # one pixel off by 10 levels
    mse = (10 / 255) ** 2 / (16 * 16 * 3)
    assert psnr(Image.fromarray(a), Image.fromarray(b)) == pytest.approx(10 * math.log10(1 / mse), rel=1e-6)


def test_more_noise_means_lower_scores():
    clean = np.asarray(_noise_image(1), dtype=np.float64) / 255
    rng = np.random.default_rng(2)
    small = np.clip(clean + rng.normal(0, 0.01, clean.shape), 0, 1)
    large = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1)
    assert psnr(clean, small) > psnr(clean, large) + 10
    assert ssim(clean, small) > ssim(clean, large)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        psnr(_noise_image(0, 32), _noise_image(0, 16))


def test_amplified_difference_shows_where_images_differ():
    a = np.zeros((8, 8, 3), np.uint8)
    b = a.copy()
    b[2, 3] = 10
    diff = np.asarray(amplified_difference(Image.fromarray(a), Image.fromarray(b), gain=8))
    assert diff[2, 3, 0] == 80 and diff.sum() == 80 * 3


def test_per_pair_values_chunked_equal_the_means():
    """Thousands of 256² pairs must not be converted at once (a 2,000-image gallery asked for ~32 GB before): the
    per-pair values come in chunks and their means are exactly the batch metrics."""
    import numpy as np
    from PIL import Image

    from dit_demo.engine import metrics

    rng = np.random.default_rng(1)
    a = [Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)) for _ in range(metrics.PAIR_CHUNK * 2 + 3)]
    b = [Image.fromarray(np.clip(np.asarray(x).astype(int) + 3, 0, 255).astype(np.uint8)) for x in a]
    psnrs, ssims = metrics.psnr_values(a, b), metrics.ssim_values(a, b)
    assert len(psnrs) == len(ssims) == len(a)
    assert metrics.psnr(a, b) == pytest.approx(float(np.mean(psnrs)))
    assert metrics.psnr_values(a[:2], a[:2]) == [float("inf")] * 2
    with pytest.raises(ValueError, match="same number"):
        metrics.psnr_values(a[:2], a[:3])
