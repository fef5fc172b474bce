"""The one grid drawer, and the text and scaling helpers it shares with charts (Pillow; difference tiles via
`engine.metrics.amplified_difference`).

Generic on purpose: a grid is a list of rows of PIL images with labels; nothing here knows about DiT, recipes
or metrics, so the gallery, the app's comparison strip and the Hub repo's gallery image share one look and one
set of tests. Tables live in `tables.py`, the scatter chart in `charts.py`.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont


@lru_cache(maxsize=16)
def font(size: int = 13) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at a size (no system fonts needed, so renders are the same on every machine)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


# Pillow's bundled font lacks a few typographic glyphs (they render as boxes): draw ASCII stand-ins instead.
_ASCII = str.maketrans(
    {"—": "-", "–": "-", "−": "-", "×": "x", "…": "...", "→": "->", "≤": "<=", "≥": ">="}
    | {"∞": "inf", "↔": "<->", "µ": "u"}
)


@lru_cache(maxsize=4096)
def has_glyph(char: str, size: int = 13) -> bool:
    """Whether the bundled font draws `char` (a missing glyph renders as the font's "notdef" box)."""
    if char.isascii():
        return True
    face = font(size)
    if not isinstance(face, ImageFont.FreeTypeFont):
        return False
    return bytes(face.getmask(char)) != bytes(face.getmask("\u0378"))  # U+0378 is unassigned: always notdef


def _stand_in(char: str) -> str:
    """An ASCII look-alike: the table's, else the character's decomposition (é → e), else "?"."""
    mapped = char.translate(_ASCII)
    if mapped != char:
        return mapped
    ascii_part = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode("ascii")
    return ascii_part or "?"


def drawable(text: str) -> str:
    """`text` with every character the bundled font cannot draw replaced by an ASCII stand-in (never a box)."""
    text = text.translate(_ASCII)
    return "".join(c if has_glyph(c) else _stand_in(c) for c in text)


def text_width(text: str, size: int = 13) -> int:
    left, _, right, _ = font(size).getbbox(text)
    return int(math.ceil(right - left))


def fit_text(text: str, width: int, size: int = 13) -> str:
    """`text`, cut with an ellipsis so it fits `width` pixels: labels never spill into the next cell."""
    text = drawable(text)
    if text_width(text, size) <= width:
        return text
    while text and text_width(text + "...", size) > width:
        text = text[:-1]
    return text + "..." if text else ""


def tile_size(side: int, minimum: int = 96) -> int:
    """Smallest whole multiple of `side` that is ≥ `minimum`: 16 px digits → 96 px, 256 px images stay 256 px."""
    if side <= 0:
        raise ValueError(f"image side must be positive, got {side}")
    return side * max(1, math.ceil(minimum / side))


def upscale(image: Image.Image, tile: int) -> Image.Image:
    """Scale so the longer side is `tile` pixels with NEAREST: every generated pixel stays a crisp square."""
    scale = tile / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.convert("RGB").resize(size, Image.Resampling.NEAREST) if size != image.size else image.convert("RGB")


@dataclass(frozen=True)
class GridLayout:
    """Where everything goes in a labelled grid; the size is a formula, so tests can check it independently.

    width  = 2·pad + label_width + cols·tile + (cols − 1)·gap
    height = 2·pad + header_height + rows·tile + (rows − 1)·gap
    """

    rows: int
    cols: int
    tile: int
    gap: int = 4
    pad: int = 8
    label_width: int = 150
    header_height: int = 24

    @property
    def width(self) -> int:
        return 2 * self.pad + self.label_width + self.cols * self.tile + max(self.cols - 1, 0) * self.gap

    @property
    def height(self) -> int:
        return 2 * self.pad + self.header_height + self.rows * self.tile + max(self.rows - 1, 0) * self.gap

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def cell(self, row: int, col: int) -> tuple[int, int]:
        """Top-left pixel of a tile."""
        x = self.pad + self.label_width + col * (self.tile + self.gap)
        y = self.pad + self.header_height + row * (self.tile + self.gap)
        return x, y


def hstrip(images: Sequence[Image.Image], background: str = "white") -> Image.Image:
    """Images side by side at native size (one per requested class), e.g. for a CLI output or a slider view."""
    width, height = sum(i.width for i in images), max(i.height for i in images)
    canvas = Image.new("RGB", (width, height), background)
    x = 0
    for image in images:
        canvas.paste(image.convert("RGB"), (x, 0))
        x += image.width
    return canvas


def line_height(font_size: int = 13) -> int:
    return font_size + 3


def header_height_for(col_labels: Sequence[str], font_size: int = 13) -> int:
    """Room for the tallest column label (one line per newline, 4 px above and below); 0 without labels.
    One line at the default size gives the classic 24 px."""
    lines = max((len(str(label).splitlines()) or 1 for label in col_labels), default=0)
    return 8 + lines * line_height(font_size) if lines else 0


def with_difference(
    cells: Sequence[Sequence[Image.Image | None]], a: int, b: int, gain: float = 8.0
) -> list[list[Image.Image | None]]:
    """Each row with one more tile: |row[a] − row[b]| × gain (`metrics.amplified_difference`), blank if either
    is missing. Images of one row must have the same size."""
    from dit_demo.engine.metrics import amplified_difference  # torch: only when a difference is drawn

    out: list[list[Image.Image | None]] = []
    for row in cells:
        x, y = row[a], row[b]
        out.append([*row, None if x is None or y is None else amplified_difference(x, y, gain)])
    return out


def _first_line(label: object) -> str:
    lines = str(label).splitlines()
    return lines[0] if lines else ""


def _check_labels(cells: Sequence[Sequence], row_labels: Sequence[str], col_labels: Sequence[str]) -> int:
    rows = len(cells)
    cols = max((len(r) for r in cells), default=0)
    if rows == 0 or cols == 0:
        raise ValueError("image_grid needs at least one row and one column")
    if row_labels and len(row_labels) != rows:
        raise ValueError(f"{len(row_labels)} row labels for {rows} rows")
    if col_labels and len(col_labels) != cols:
        raise ValueError(f"{len(col_labels)} column labels for {cols} columns")
    return cols


def _draw_lines(draw: ImageDraw.ImageDraw, lines: Sequence[str], x: int, y: int, width: int, size: int, centre: bool):
    """Lines top-down from (x, y), each cut to `width` pixels (only glyphs the font has), optionally centred."""
    for k, line in enumerate(lines):
        text = fit_text(line, width, size)
        left = x + (width - text_width(text, size)) // 2 if centre else x
        draw.text((left, y + k * line_height(size)), text, fill="black", font=font(size))


def image_grid(
    cells: Sequence[Sequence[Image.Image | None]],
    *,
    row_labels: Sequence[str] = (),
    col_labels: Sequence[str] = (),
    tile: int | None = None,
    min_tile: int = 96,
    difference: tuple[int, int] | None = None,
    gain: float = 8.0,
    gap: int = 4,
    pad: int = 8,
    label_width: int | None = None,
    header_height: int | None = None,
    font_size: int = 13,
    background: str = "white",
) -> Image.Image:
    """A labelled grid: rows × columns of tiles (NEAREST-upscaled to `tile`), column headers, row labels.

    Labels may have several lines ("\\n"); every line is cut to fit its cell. `None` cells stay blank (e.g. no
    difference image for the reference column). `tile` defaults to `tile_size(largest image side, min_tile)`,
    a whole multiple, so every generated pixel stays a crisp square. `difference=(a, b)` appends a column
    |column a − column b| × `gain`, headed "|A − B| ×gain" from the first lines of the two column labels.
    `label_width` defaults to 150 with row labels, else 0; `header_height` to the room the column labels need
    (24 px for one line), else 0.
    """
    if difference is not None:
        a, b = difference
        cells = with_difference(cells, a, b, gain)
        if col_labels:
            col_labels = [*col_labels, f"|{_first_line(col_labels[a])} − {_first_line(col_labels[b])}| ×{gain:g}"]
    cols = _check_labels(cells, row_labels, col_labels)
    if tile is None:
        side = max((max(im.size) for r in cells for im in r if im is not None), default=min_tile)
        tile = tile_size(side, min_tile)
    label_width = (150 if row_labels else 0) if label_width is None else label_width
    header_height = header_height_for(col_labels, font_size) if header_height is None else header_height
    layout = GridLayout(len(cells), cols, tile, gap, pad, label_width, header_height)
    canvas = Image.new("RGB", layout.size, background)
    draw = ImageDraw.Draw(canvas)
    for c, label in enumerate(col_labels):
        x, _ = layout.cell(0, c)
        _draw_lines(draw, str(label).splitlines(), x, pad + 4, tile, font_size, centre=True)
    for r, row in enumerate(cells):
        _, y = layout.cell(r, 0)
        if row_labels:
            lines = str(row_labels[r]).splitlines()
            top = y + (tile - line_height(font_size) * len(lines)) // 2
            _draw_lines(draw, lines, pad, top, label_width - 8, font_size, centre=False)
        for c, image in enumerate(row):
            if image is not None:
                tile_image = upscale(image, tile)
                x, y = layout.cell(r, c)
                canvas.paste(tile_image, (x + (tile - tile_image.width) // 2, y + (tile - tile_image.height) // 2))
    return canvas
