"""`dit-demo gallery` / `python -m dit_demo.cli.gallery`: arguments → GalleryConfig, light --help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dit_demo.cli import gallery as gallery_cli
from dit_demo.errors import InvalidRequestError
from dit_demo.reports.gallery import GalleryConfig


def test_arguments_become_a_gallery_config():
    args = gallery_cli.build_parser().parse_args(
        ["--model", "tiny-random", "--recipes", "bf16, int8", "--labels", "tench,207", "--seeds", "3,4"]
        + ["--guidance", "2", "--tile", "128", "--no-warmup", "--out", "x"]
    )
    config = gallery_cli.config_from_args(args)
    assert config == GalleryConfig(
        source="tiny-random",
        recipes=["bf16", "int8"],
        labels=["tench", "207"],
        seeds=[3, 4],
        guidance_scale=2.0,
        min_tile=128,
        warmup=False,
    )


def test_defaults_are_the_library_defaults():
    args = gallery_cli.build_parser().parse_args(["--out", "x", "--labels", "all"])
    assert gallery_cli.config_from_args(args) == GalleryConfig()
    assert gallery_cli.DEFAULT_RECIPES_HELP == ",".join(GalleryConfig().recipes)


def test_per_class_seeds():
    parser = gallery_cli.build_parser()
    args = parser.parse_args(["--per-class", "3", "--seed", "10", "--out", "x"])
    assert gallery_cli.config_from_args(args).seeds == [10, 11, 12]
    with pytest.raises(InvalidRequestError, match="per-class"):
        gallery_cli.config_from_args(parser.parse_args(["--per-class", "0", "--out", "x"]))


def test_help_imports_nothing_heavy():
    code = (
        "import sys, dit_demo.cli.gallery as g; g.build_parser().format_help(); "
        "print(sorted({'torch', 'diffusers', 'PIL'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
