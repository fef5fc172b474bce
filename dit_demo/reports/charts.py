"""The project's scatter chart (e.g. latency vs weights, one point per recipe): one layout — round ticks from
zero, each point's label placed right beside its point or replaced by its number, a key — drawn as inline SVG for
HTML pages (`scatter_svg`) or as a PNG with Pillow for files (`scatter_chart`, no matplotlib).

PNG text goes through `render.drawable`, so every glyph is one the bundled font has.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

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
) -> list[str]:
    """One coloured dot per point; its label beside it (`place_labels`, the same placement as the SVG chart).
    Returns the labels, when some point's whole label found no room beside it (the key is then drawn), else []."""
    (width, height), (left, right, top, bottom) = frame.size, frame.margins
    spots = [frame.to_px(float(p[x]), float(p[y])) for p in points]
    for i, (px, py) in enumerate(spots):
        draw.ellipse([px - 5, py - 5, px + 5, py + 5], fill=PALETTE[i % len(PALETTE)], outline="black")
    if not label:
        return []
    texts = [drawable(str(p.get(label, ""))) for p in points]
    area = (left + 2, top + 2, width - right - 2, height - bottom - 2)
    placed = place_labels(spots, texts, area, 13, width_of=text_width)
    for i, spot in enumerate(placed):
        if spot is None:
            continue
        lx, ly, anchor, text = spot
        w = text_width(text, 13)
        tx = {"start": lx, "end": lx - w, "middle": lx - w / 2}[anchor]
        draw.text((tx, ly - 12), text, fill=PALETTE[i % len(PALETTE)], font=font(13))
    return texts if any(spot is None or spot[3] != text for spot, text in zip(placed, texts)) else []


def _with_key(canvas: Image.Image, texts: Sequence[str]) -> Image.Image:
    """The chart with a key below it: number, colour dot and whole label of every point."""
    line = 18
    keyed = Image.new("RGB", (canvas.width, canvas.height + line * len(texts) + 8), "white")
    keyed.paste(canvas, (0, 0))
    draw = ImageDraw.Draw(keyed)
    for i, text in enumerate(texts):
        y = canvas.height + 4 + i * line
        draw.ellipse([16, y + 3, 26, y + 13], fill=PALETTE[i % len(PALETTE)], outline="black")
        draw.text((34, y), drawable(f"{i + 1}  {text}"), fill="black", font=font(13))
    return keyed


def _estimated_width(text: str, size: int) -> float:
    return 0.56 * size * len(text)  # close enough for a sans-serif UI font; boxes are only kept apart


def _text_box(x: float, baseline: float, text: str, size: int, anchor: str, width_of=_estimated_width) -> tuple:
    width = width_of(text, size)
    left = {"start": x, "end": x - width, "middle": x - width / 2}[anchor]
    return left, baseline - size, left + width, baseline + 3


def _overlaps(a: tuple, b: tuple) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(
    spots: Sequence[tuple[float, float]],
    texts: Sequence[str],
    area: tuple[float, float, float, float],
    size: int,
    width_of=_estimated_width,
) -> list[tuple[float, float, str, str] | None]:
    """(x, baseline, anchor, text) of each point's label, always right beside its point (right, left, above, below
    or at a corner), inside `area` and clear of every point and earlier label. Where the whole label fits nowhere
    beside its point, its number in the key (1, 2, ...) stands there instead, and where not even that fits, None
    (the key names the point by its colour): a label never drifts off its point."""
    taken = [(x - 7, y - 7, x + 7, y + 7) for x, y in spots]
    placed = []
    for k, ((x, y), text) in enumerate(zip(spots, texts)):
        mid = y + 0.35 * size
        candidates = [
            (x + 9, mid, "start"),
            (x - 9, mid, "end"),
            (x, y - 9, "middle"),
            (x, y + size + 7, "middle"),
            (x + 6, y - 7, "start"),
            (x + 6, y + size + 4, "start"),
            (x - 6, y - 7, "end"),
            (x - 6, y + size + 4, "end"),
        ]
        step = size + 2  # one line further up or down, still touching the point's side
        candidates += [(x + 9, mid - step, "start"), (x + 9, mid + step, "start")]
        candidates += [(x - 9, mid - step, "end"), (x - 9, mid + step, "end")]
        choice = None
        for shown in (text, str(k + 1)):
            for cx, cy, anchor in candidates:
                box = _text_box(cx, cy, shown, size, anchor, width_of)
                inside = area[0] <= box[0] and box[2] <= area[2] and area[1] <= box[1] and box[3] <= area[3]
                if inside and not any(_overlaps(box, other) for other in taken):
                    choice = (cx, cy, anchor, shown)
                    break
            if choice:
                break
        if choice:
            taken.append(_text_box(*choice[:2], choice[3], size, choice[2], width_of))
        placed.append(choice)
    return placed


def _key_html(points: Sequence[Mapping]) -> str:
    """The key under a chart: number, colour, full label and both values of every point."""
    items = []
    for k, p in enumerate(points):
        values = ", ".join(str(p[v]) for v in ("x_text", "y_text") if p.get(v))
        items.append(
            f'<li><span class="dq-dot" style="background:{PALETTE[k % len(PALETTE)]}"></span>'
            f"<b>{k + 1}</b> {escape(str(p['label']))}" + (f": {escape(values)}" if values else "") + "</li>"
        )
    return f'<ol class="dq-key">{"".join(items)}</ol>'


def scatter_svg(
    points: Sequence[Mapping],
    x_title: str,
    y_title: str,
    title: str = "",
    guides: tuple[float | None, float | None] = (None, None),
) -> str:
    """An inline SVG scatter for HTML pages, with its key: axes from zero (ratios read honestly), round ticks, each
    point labelled beside it in its colour (`place_labels`), a point on top of an earlier one drawn as a ring around
    it, optional dashed guide lines at x = guides[0] and y = guides[1].
    Points: `x`, `y` (display units), `label`; optional `x_text`, `y_text` for the key."""
    width, height, font_size = 320, 250, 14  # narrow: at 390 px the text stays about 12 px
    left, right, top, bottom = 52, 12, 30 if title else 12, 42
    xs = [float(p["x"]) for p in points]
    ys = [float(p["y"]) for p in points]
    x_ticks = nice_ticks(0.0, max([*xs, guides[0] or 0], default=1.0) * 1.15 or 1.0)
    y_ticks = nice_ticks(0.0, max([*ys, guides[1] or 0], default=1.0) * 1.15 or 1.0)
    frame = _Frame((width, height), (left, right, top, bottom), x_ticks, y_ticks)
    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title or y_title)}">']
    if title:
        parts.append(f'<text x="4" y="18" font-size="{font_size + 1}" font-weight="700">{escape(title)}</text>')
    for t in x_ticks:
        x, _ = frame.to_px(t, 0)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}" stroke="#8884"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" font-size="13" text-anchor="middle">{t:g}</text>')
    for t in y_ticks:
        _, y = frame.to_px(0, t)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#8884"/>')
        parts.append(f'<text x="{left - 5}" y="{y + 4:.1f}" font-size="13" text-anchor="end">{t:g}</text>')
    gx, gy = guides
    if gx is not None:
        x, _ = frame.to_px(gx, 0)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}" class="dq-guide"/>')
    if gy is not None:
        _, y = frame.to_px(0, gy)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" class="dq-guide"/>')
    parts.append(
        f'<text x="{(left + width - right) / 2}" y="{height - 6}" font-size="{font_size}" text-anchor="middle">'
        f"{escape(x_title)}</text>"
    )
    parts.append(
        f'<text transform="translate(13 {(top + height - bottom) / 2}) rotate(-90)" font-size="{font_size}" '
        f'text-anchor="middle">{escape(y_title)}</text>'
    )
    spots = [frame.to_px(x, y) for x, y in zip(xs, ys)]
    texts = [str(p["label"]) for p in points]
    for k, ((x, y), text) in enumerate(zip(spots, texts)):
        colour = PALETTE[k % len(PALETTE)]
        under = sum(abs(x - ox) < 3 and abs(y - oy) < 3 for ox, oy in spots[:k])  # points drawn here already
        shape = (
            f'r="5.5" fill="{colour}" stroke="#fff"'
            if not under
            else f'r="{5.5 + 3 * under}" fill="none" stroke="{colour}"'
        )
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" {shape} stroke-width="{1 if not under else 2}">'
            f"<title>{k + 1}: {escape(text)}</title></circle>"
        )
    for k, spot in enumerate(place_labels(spots, texts, (left + 2, top, width - right, height - bottom), 13)):
        if spot is None:
            continue
        lx, ly, anchor, text = spot
        parts.append(
            f'<text class="dq-point" x="{lx:.1f}" y="{ly:.1f}" font-size="13" text-anchor="{anchor}" '
            f'style="fill:{PALETTE[k % len(PALETTE)]}">{escape(text)}</text>'
        )
    parts.append("</svg>")
    return f'<div class="dq-chart">{"".join(parts)}{_key_html(points)}</div>'


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
    """A labelled scatter plot (e.g. latency vs memory, one point per recipe) as an RGB image; a key below the plot
    when some label had to be shortened to its number or left out.

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
    key = _draw_points(draw, frame, usable, x, y, label)
    return _with_key(canvas, key) if key else canvas
