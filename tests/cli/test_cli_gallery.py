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
    args = gallery_cli.build_parser().parse_args(["--out", "x"])
    assert gallery_cli.config_from_args(args) == GalleryConfig()
    everything = gallery_cli.build_parser().parse_args(["--out", "x", "--labels", "all"])
    assert gallery_cli.config_from_args(everything).labels == "all"
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


def test_shipped_gallery_is_its_own_command(tmp_path):
    parse = gallery_cli.build_parser().parse_args
    with pytest.raises(InvalidRequestError, match="is the shipped gallery the app shows: regenerate it with"):
        gallery_cli.checked_args(parse(["--out", str(gallery_cli.SHIPPED_DIR)]))
    with pytest.raises(InvalidRequestError, match="give --out DIR"):
        gallery_cli.checked_args(parse([]))
    with pytest.raises(InvalidRequestError, match="leave out --steps"):
        gallery_cli.checked_args(parse(["--shipped", "--steps", "3"]))
    with pytest.raises(InvalidRequestError, match="leave out --out"):
        gallery_cli.checked_args(parse(["--shipped", "--out", str(tmp_path)]))
    assert gallery_cli.checked_args(parse(["--out", str(tmp_path)])).out == str(tmp_path)
    shipped = gallery_cli.checked_args(parse(["--shipped", "--no-progress"]))
    assert shipped.out == str(gallery_cli.SHIPPED_DIR) and shipped.no_progress
    config = gallery_cli.config_from_args(shipped)
    assert (config.recipes, config.labels, config.seeds, config.steps) == (
        ["bf16", "int8", "int8-dynamic", "int8-a8", "fp8", "int4"],
        None,
        [0, 1, 2],
        25,
    )
    results = gallery_cli.SHIPPED_DIR / "results.json"
    if results.is_file():  # the settings are those the shipped gallery was made with
        import json

        recorded = json.loads(results.read_text())["config"]
        for key in ("recipes", "labels", "seeds", "steps", "guidance_scale", "batch_size", "max_rows_shown"):
            assert recorded[key] == getattr(config, key), key


def test_refusal_exits_2_before_any_work(capsys):
    from dit_demo.cli.main import main

    assert main(["gallery", "--out", str(gallery_cli.SHIPPED_DIR)]) == 2
    assert "dit-demo gallery --shipped" in capsys.readouterr().err
