"""The pre-computed gallery and benchmark tabs read what is on disk, or say how to make it."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from dit_demo.app import tabs


def test_gallery_and_bench_tabs(tmp_path: Path) -> None:
    assert "python -m dit_demo gallery" in tabs.gallery_markdown(tmp_path)
    assert tabs.gallery_grid(tmp_path) is None and tabs.bench_markdown(tmp_path / "README.md") is None
    (tmp_path / "results.md").write_text("| recipe | PSNR |\n|---|---|\n| int8 | 41.2 |\n")
    Image.new("RGB", (4, 4)).save(tmp_path / "grid.png")
    assert "int8 | 41.2" in tabs.gallery_markdown(tmp_path)
    assert tabs.gallery_grid(tmp_path) == str(tmp_path / "grid.png")
