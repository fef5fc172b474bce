"""The recipe registry is the one place a recipe is declared: its declarations hold on real quantized models, and the
CLI, app, card and README read it instead of spelling recipes out again."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from optimum.quanto import qfloat8, qint4, qint8, quantization_map

from dit_demo.engine.generate import build_variant
from dit_demo.engine.model.serialization import save_pipeline
from dit_demo.engine.model.stock import is_stock_loadable, stock_quantization_config
from dit_demo.engine.quant.quantize import CalibrationConfig
from dit_demo.engine.quant.recipes import QUANTIZED_RECIPES, RECIPES, REFERENCE_RECIPE, SAVABLE_RECIPES, get_recipe
from dit_demo.errors import InvalidRequestError

ROOT = Path(__file__).resolve().parents[3]
# The qmap does not depend on how long calibration or the smoothing search run: the shortest run that exercises them.
MINIMAL = CalibrationConfig(steps=2, seeds=(1000,), num_labels=1)


def test_registry_is_standard_library_only():
    """`dit-demo --help` lists the recipes from the registry, so importing it must not pull torch or quanto."""
    probe = "import json, sys\nimport dit_demo.engine.quant.recipes\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    loaded = {name.split(".")[0] for name in json.loads(proc.stdout)}
    assert not loaded & {"torch", "optimum", "diffusers", "numpy"}


def test_entries_are_complete_and_consistent():
    assert REFERENCE_RECIPE in RECIPES and not RECIPES[REFERENCE_RECIPE].quantized
    assert QUANTIZED_RECIPES == tuple(name for name in RECIPES if name != REFERENCE_RECIPE)
    for name, recipe in RECIPES.items():
        assert recipe.name == name and recipe.label and recipe.description and "\n" not in recipe.description
        assert not recipe.needs_calibration or recipe.quantized, name  # activations only on top of weights
        assert not recipe.smooth or recipe.needs_calibration, name  # smoothing exists for the activation scales
        assert recipe.quantized == bool(recipe.tags), name  # every quantized recipe is findable on the Hub
    assert RECIPES["fp8-a8"].tags == ("fp8", "w8a8")  # was missing from the card's own table


def test_qtypes_resolve_to_quanto():
    assert RECIPES["int8"].weights is qint8 and RECIPES["int8"].activations is None
    assert RECIPES["fp8-a8"].weights is qfloat8 and RECIPES["fp8-a8"].activations is qfloat8
    assert RECIPES["fp8-a8"].weights_only_qtype is qint8 and RECIPES["int8-a8"].weights_only_qtype is qint8
    assert RECIPES["int4"].weights is qint4 and RECIPES["bf16"].weights is None


def test_unknown_recipe_names_the_choices():
    with pytest.raises(InvalidRequestError, match="int3.*bf16, int8"):
        get_recipe("int3")


@pytest.mark.parametrize(
    ("recipe", "device", "expected"),
    [
        ("fp8-a8", "cpu", "no fp8 tensor cores"),
        ("fp8", "cuda", "Marlin"),
        ("int4", "cpu", "C++ extension"),
        ("int8-a8", "cpu", "calibrates activation ranges"),
        ("int8-a8-smooth", "cuda", "guidance 1, 2 and 4"),
    ],
)
def test_build_notes_per_device(recipe, device, expected):
    assert expected in RECIPES[recipe].build_note(device)


@pytest.mark.parametrize(("recipe", "device"), [("fp8", "cpu"), ("int4", "cuda"), ("int8", "cpu"), ("bf16", "cuda")])
def test_quick_builds_have_no_note(recipe, device):
    assert RECIPES[recipe].build_note(device) is None


@pytest.mark.parametrize("recipe", SAVABLE_RECIPES)
def test_stock_loadable_declaration_matches_the_saved_config(recipe, tiny_reference):
    """What the registry promises (README, card) is what `stock_quantization_config` writes for a real model."""
    variant = build_variant(tiny_reference, recipe, calibration=MINIMAL)
    config = stock_quantization_config(variant.pipe.transformer)
    assert is_stock_loadable({"quantization_config": config}) == RECIPES[recipe].stock_loadable, config
    qmap = quantization_map(variant.pipe.transformer)
    activations = {entry["activations"] for entry in qmap.values()} - {"none"}
    assert activations == ({RECIPES[recipe].activations.name} if RECIPES[recipe].needs_calibration else set())


def test_a_recipe_that_is_not_savable_refuses_to_save(tiny_reference, tmp_path):
    unsavable = [name for name in QUANTIZED_RECIPES if not RECIPES[name].savable]
    assert unsavable == ["int8-dynamic"]
    variant = build_variant(tiny_reference, "int8-dynamic")
    with pytest.raises(InvalidRequestError, match="recipe: int8-dynamic is not saved"):
        save_pipeline(variant.pipe, tmp_path / "dynamic")
    assert not (tmp_path / "dynamic").exists()


def test_the_reference_saves_as_a_plain_diffusers_folder(tiny_reference, tmp_path):
    assert RECIPES[REFERENCE_RECIPE].stock_loadable
    save_pipeline(tiny_reference.pipe, tmp_path / "plain")
    config = json.loads((tmp_path / "plain" / "transformer" / "config.json").read_text())
    assert (
        "quantization_config" not in config and not (tmp_path / "plain" / "transformer" / "quanto_qmap.json").exists()
    )


def readme_recipe_rows() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^\| `[^`]+` \|.*\|$", text.split("**Recipes**", 1)[1].split("\n\n", 2)[1], flags=re.M)


def registry_rows() -> list[str]:
    def kind(qtype: str | None) -> str:
        return "float" if qtype is None else qtype.removeprefix("q")

    return [
        f"| `{r.name}` | {r.label} | {kind(r.weights_type)} | {r.activation_kind} | "
        f"{'yes' if r.stock_loadable else 'no'} | {r.description} |"
        for r in RECIPES.values()
    ]


def test_readme_recipe_table_is_the_registry():
    expected = registry_rows()
    assert readme_recipe_rows() == expected, "README.md's recipe table should read:\n" + "\n".join(expected)
