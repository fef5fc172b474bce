"""A small labelled scatter chart (e.g. latency vs weights, one point per recipe) drawn with Pillow, no matplotlib.

Text goes through `render.drawable`, so every glyph is one the bundled font has.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw

from dit_demo.reports.render import drawable, font, text_width
from dit_demo.reports.tables import Formatter, format_value

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 × 10^k steps) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"tick range must be finite, got {low}, {high}")
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks, value = [], start
    while value < high + step * 0.999:
        ticks.append(round(value, 12))
        value += step
    return ticks


@dataclass(frozen=True)
class _Frame:
    """Plot area in pixels and the tick values that bound it."""

    size: tuple[int, int]
    margins: tuple[int, int, int, int]  # left, right, top, bottom
    x_ticks: list[float]
    y_ticks: list[float]

    def to_px(self, vx: float, vy: float) -> tuple[float, float]:
        (width, height), (left, right, top, bottom) = self.size, self.margins
        fx = (vx - self.x_ticks[0]) / ((self.x_ticks[-1] - self.x_ticks[0]) or 1)
        fy = (vy - self.y_ticks[0]) / ((self.y_ticks[-1] - self.y_ticks[0]) or 1)
        return left + fx * (width - left - right), height - bottom - fy * (height - top - bottom)


def _finite_points(points: Sequence[Mapping], x: str, y: str) -> list[Mapping]:
    usable = []
    for point in points:
        px, py = point.get(x), point.get(y)
        if isinstance(px, (int, float)) and isinstance(py, (int, float)) and math.isfinite(px) and math.isfinite(py):
            usable.append(point)
    if not usable:
        raise ValueError(f"no point has finite {x!r} and {y!r}")
    return usable


def _draw_grid(draw: ImageDraw.ImageDraw, frame: _Frame, x_format: Formatter, y_format: Formatter) -> None:
    """Grid lines with their tick values, and the frame around the plot area."""
    (width, height), (left, right, top, bottom) = frame.size, frame.margins
    small = font(11)
    for tick in frame.x_ticks:
        px, _ = frame.to_px(tick, frame.y_ticks[0])
        draw.line([(px, top), (px, height - bottom)], fill="#e6e6e6")
        text = drawable(x_format(tick))
        draw.text((px - text_width(text, 11) / 2, height - bottom + 4), text, fill="#333", font=small)
    for tick in frame.y_ticks:
        _, py = frame.to_px(frame.x_ticks[0], tick)
        draw.line([(left, py), (width - right, py)], fill="#e6e6e6")
        text = drawable(y_format(tick))
        draw.text((left - 6 - text_width(text, 11), py - 6), text, fill="#333", font=small)
    draw.rectangle([left, top, width - right, height - bottom], outline="#444")


def _draw_titles(canvas: Image.Image, frame: _Frame, title: str, x_label: str, y_label: str) -> None:
    """Title on top, x label below, y label rotated on the left."""
    draw, normal = ImageDraw.Draw(canvas), font(13)
    (width, height), (left, right, top, bottom) = frame.size, frame.margins
    title, x_label, y_label = drawable(title), drawable(x_label), drawable(y_label)
    if title:
        draw.text(((width - text_width(title, 13)) / 2, 10), title, fill="black", font=normal)
    draw.text(((left + width - right - text_width(x_label, 13)) / 2, height - 22), x_label, fill="black", font=normal)
    label_image = Image.new("RGB", (text_width(y_label, 13) + 4, 16), "white")
    ImageDraw.Draw(label_image).text((2, 0), y_label, fill="black", font=normal)
    rotated = label_image.rotate(90, expand=True)
    canvas.paste(rotated, (4, max(top, (top + height - bottom - rotated.height) // 2)))


def _draw_points(
    draw: ImageDraw.ImageDraw, frame: _Frame, points: Sequence[Mapping], x: str, y: str, label: str | None
) -> None:
    """One coloured dot per point; its label beside it, moved up or down until it overlaps no earlier label."""
    width, right = frame.size[0], frame.margins[1]
    placed: list[tuple[float, float, float, float]] = []
    for i, point in enumerate(points):
        px, py = frame.to_px(float(point[x]), float(point[y]))
        colour = PALETTE[i % len(PALETTE)]
        draw.ellipse([px - 5, py - 5, px + 5, py + 5], fill=colour, outline="black")
        if label:
            text = drawable(str(point.get(label, "")))
            w = text_width(text, 13)
            tx = px + 8 if px + 8 + w < width - right else px - 8 - w
            for dy in (-16, 4, -30, 18, -44, 32):
                box = (tx, py + dy, tx + w, py + dy + 14)
                if not any(b[0] < box[2] and box[0] < b[2] and b[1] < box[3] and box[1] < b[3] for b in placed):
                    break
            placed.append(box)
            draw.text((box[0], box[1]), text, fill=colour, font=font(13))


def scatter_chart(
    points: Sequence[Mapping],
    *,
    x: str,
    y: str,
    label: str | None = None,
    title: str = "",
    x_label: str | None = None,
    y_label: str | None = None,
    size: tuple[int, int] = (640, 420),
    from_zero: bool = True,
    x_format: Formatter = format_value,
    y_format: Formatter = format_value,
) -> Image.Image:
    """A labelled scatter plot (e.g. latency vs memory, one point per recipe) as an RGB image.

    Points whose x or y is missing or not finite are left out; at least one must remain. Axes start at zero
    unless `from_zero=False`, so ratios between points read correctly.
    """
    usable = _finite_points(points, x, y)
    xs, ys = [float(p[x]) for p in usable], [float(p[y]) for p in usable]
    x_ticks = nice_ticks(0.0 if from_zero else min(xs), max(xs) * (1.08 if max(xs) > 0 else 1) or 1.0)
    y_ticks = nice_ticks(0.0 if from_zero else min(ys), max(ys) * (1.08 if max(ys) > 0 else 1) or 1.0)
    frame = _Frame(size, (72, 24, 36 if title else 16, 48), x_ticks, y_ticks)
    canvas = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(canvas)
    _draw_grid(draw, frame, x_format, y_format)
    _draw_titles(canvas, frame, title, x_label or x, y_label or y)
    _draw_points(draw, frame, usable, x, y, label)
    return canvas
