"""The page's fixed text and the content of the pre-computed gallery and GPU benchmark tabs (read from disk)."""

from __future__ import annotations

from pathlib import Path

from dit_demo.app.config import BENCH_README, GALLERY_DIR
from dit_demo.engine.quantize import REFERENCE_RECIPE

TITLE = "DiT × quanto: same seed, every recipe"

INTRO = f"""# DiT × optimum-quanto: same seed, every recipe, measured
Pick a model, classes and recipes; the {REFERENCE_RECIPE} reference and each quantized recipe render the **same seed**
side by side, with latency, memory, weight bytes and PSNR/SSIM against the reference. Quantized variants are built
on first use and cached."""

GALLERY_PICTURES = ("grid.png", "chart.png")


def gallery_markdown(folder: Path = GALLERY_DIR) -> str:
    """results.md of the pre-computed gallery, or how to make it."""
    results = folder / "results.md"
    if results.is_file():
        return results.read_text(encoding="utf-8")
    return (
        "No pre-computed comparison yet. Create it (CPU, a few minutes) with\n\n"
        "```bash\npython -m dit_demo gallery --model embedded --recipes bf16,int8,int8-a8 --labels all "
        "--seeds 0,1 --steps 25 --guidance 4 --out gallery/embedded\n```\n\n"
        "It writes `grid.png`, `results.json`, `results.md` and `index.html` there; restart the app to show them."
    )


def gallery_grid(folder: Path = GALLERY_DIR, name: str = "grid.png") -> str | None:
    """A picture of the pre-computed gallery (grid.png, chart.png), if it was made."""
    grid = folder / name
    return str(grid) if grid.is_file() else None


def bench_markdown(path: Path = BENCH_README) -> str | None:
    """The GPU benchmark's README, if this checkout has it (the tab is left out otherwise)."""
    return path.read_text(encoding="utf-8") if path.is_file() else None
