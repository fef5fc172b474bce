"""Which shipped model is the default: the MNIST DiT once its weights are in the checkout, else the digits model,
for the app, the CLI, the galleries and `resolve_source(None)` alike."""

from __future__ import annotations

import pytest

from dit_demo.engine.model import resolver, shipped
from dit_demo.reports.evaluate import check_targets


@pytest.fixture(params=[False, True], ids=["digits-only", "with-mnist"])
def mnist_present(request, tmp_path, monkeypatch):
    folder = tmp_path / "mnist"
    if request.param:  # what `resolve_source` reads before any weights: the pipeline index of the digits model
        folder.mkdir()
        (folder / "model_index.json").write_text((shipped.EMBEDDED_MODEL_DIR / "model_index.json").read_text())
    monkeypatch.setattr(shipped, "MNIST_MODEL_DIR", folder)
    monkeypatch.setattr(resolver, "MNIST_MODEL_DIR", folder)
    return request.param


def test_every_surface_takes_the_same_default(mnist_present):
    from dit_demo.app.config import default_model
    from dit_demo.app.offered import model_choices
    from dit_demo.cli import evaluate, gallery
    from dit_demo.reports.evaluate import EvaluateConfig
    from dit_demo.reports.gallery.config import GalleryConfig

    expected = "mnist" if mnist_present else "embedded"
    assert shipped.default_source() == expected
    assert default_model(environ={}) == expected
    assert gallery.build_parser().parse_args([]).model == expected
    assert evaluate.build_parser().parse_args(["--out", "x"]).source == expected
    assert GalleryConfig().source == expected and EvaluateConfig(out="x").source == expected
    assert resolver.resolve_source(None).name == expected
    assert ("mnist" in model_choices("embedded")) is mnist_present
    assert "embedded" in model_choices(expected)  # the digits model stays on offer


def test_missing_mnist_weights_are_named():
    if shipped.mnist_available():
        pytest.skip("the MNIST weights are in this checkout")
    with pytest.raises(resolver.ModelLoadError, match="MNIST model is missing"):
        resolver.resolve_source("mnist")


def test_mnist_reports_carry_the_95_percent_target():
    rows = [{"recipe": "bf16", "guidance": 2.0, "digit_accuracy": 0.94, "fid": 5.0, "psnr_db": None, "ssim": 1.0}]
    mnist = {c["target"]: c for c in check_targets(rows, image_size=28)}
    assert mnist["MNIST: full precision accuracy @ g=2 >= 95 %"]["passed"] is False
    assert not any(t.startswith("MNIST") for t in (c["target"] for c in check_targets(rows)))
    assert not any("g=4" in t for t in mnist)  # guidance 4 was not evaluated: no row, not a miss


def test_a_card_of_the_mnist_model_carries_mnists_license():
    from dit_demo.hub.card import base_model_info

    info = base_model_info("mnist", "embedded")
    assert info.license == "cc-by-sa-3.0" and "CC BY-SA 3.0" in info.description
    assert base_model_info("embedded", "embedded").license != "cc-by-sa-3.0"
