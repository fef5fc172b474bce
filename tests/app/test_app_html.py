"""The page's HTML pieces: difference images with their scale (tables and charts: tests/reports)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from dit_demo.app.page import views


def test_difference_images_state_gain_and_largest_error() -> None:
    a = Image.new("RGB", (4, 4), (100, 100, 100))
    b = a.copy()
    b.putpixel((1, 2), (103, 100, 99))  # largest channel error 3
    images, gain, largest = views.difference_images([a, a], [b, a])
    assert largest == 3 and gain == 64  # the largest power of two with 3 × gain ≤ 255, capped at ×64
    first = np.asarray(images[0])
    assert tuple(first[2, 1]) == (255, 255 - 192, 255 - 192) and tuple(first[0, 0]) == (255, 255, 255)
    assert np.asarray(images[1]).min() == 255  # identical: white, not black
    _, gain, largest = views.difference_images([a], [a])
    assert (gain, largest) == (1, 0)
    big = a.copy()
    big.putpixel((0, 0), (0, 100, 100))
    assert views.difference_images([a], [big])[1:] == (2, 100)
