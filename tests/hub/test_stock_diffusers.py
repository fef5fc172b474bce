"""Published folders through the client their users run: stock diffusers in a clean venv holding only torch,
diffusers, optimum-quanto and accelerate (the model card's install line) — never this project's loader.

Weight-only recipes must load with `DiTPipeline.from_pretrained` (and `DiffusionPipeline.from_pretrained`, what the
Hub's "Use this model" button shows) into the same image this project makes (max difference 0); recipes with
calibrated activations must raise a clear error that says how to load them — never return an image.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from dit_demo.engine.generate import build_reference, build_variant, generate
from dit_demo.engine.model.serialization import save_pipeline
from dit_demo.engine.request import SamplingRequest
from tests.conftest import TINY_CALIBRATION
from tests.venvs import run_python

pytestmark = pytest.mark.slow

WEIGHT_ONLY = ["int8", "fp8", "int4"]
REQUEST = dict(labels=[3, 7], seeds=[0, 1], steps=8, guidance_scale=4.0)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Digits folders as this project publishes them, with the images this project's loader makes from them."""
    from dit_demo.engine.model.loading import load_pipeline

    root = tmp_path_factory.mktemp("published")
    reference = build_reference("embedded", device="cpu")
    request = SamplingRequest.create(REQUEST["labels"], seeds=REQUEST["seeds"], steps=REQUEST["steps"])
    folders = {}
    for recipe in WEIGHT_ONLY + ["int8-a8"]:
        variant = build_variant(reference, recipe, calibration=TINY_CALIBRATION)
        folder = save_pipeline(
            variant.pipe, root / recipe, metadata={"recipe": recipe}, storage_dtype=reference.storage_dtype
        )
        ours = generate(load_pipeline(str(folder), device="cpu"), request).images
        np.save(root / f"{recipe}.npy", np.stack([np.asarray(image) for image in ours]))
        folders[recipe] = folder
    return root, folders


STOCK_SCRIPT = textwrap.dedent(
    """
    import json, sys, numpy as np, torch
    import diffusers
    cases, request = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    outcomes = {}
    for name, (loader, folder, expected) in cases.items():
        try:
            pipe = getattr(diffusers, loader).from_pretrained(folder, torch_dtype=torch.float32)
        except Exception as exc:
            outcomes[name] = {"raised": type(exc).__name__, "message": str(exc)}
            continue
        generators = [torch.Generator("cpu").manual_seed(s) for s in request["seeds"]]
        out = pipe(class_labels=request["labels"], guidance_scale=request["guidance_scale"], generator=generators,
                   num_inference_steps=request["steps"], output_type="np")
        images = np.stack([np.asarray(i) for i in pipe.numpy_to_pil(out.images)]).astype(int)
        outcomes[name] = {"max_diff": int(np.abs(images - np.load(expected).astype(int)).max()),
                          "layer": type(pipe.transformer.transformer_blocks[0].attn1.to_q).__name__,
                          "pipeline": type(pipe).__name__}
    print(json.dumps(outcomes))
    """
)


@pytest.fixture(scope="module")
def stock_outcomes(stock_python, published) -> dict:  # stock_python: tests/hub/conftest.py (one venv a session)
    """One interpreter start for every case (torch imports once): what stock diffusers did with each folder."""
    root, folders = published
    cases = {recipe: ("DiTPipeline", str(folders[recipe]), str(root / f"{recipe}.npy")) for recipe in folders}
    cases["int8 via DiffusionPipeline"] = ("DiffusionPipeline", str(folders["int8"]), str(root / "int8.npy"))
    argv = [json.dumps(cases), json.dumps(REQUEST)]
    result = run_python(stock_python, f"import sys; sys.argv = ['stock', *{argv!r}]\n" + STOCK_SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("recipe", WEIGHT_ONLY)
def test_stock_diffusers_reproduces_weight_only_recipes_exactly(stock_outcomes, recipe):
    assert stock_outcomes[recipe] == {"max_diff": 0, "layer": "QLinear", "pipeline": "DiTPipeline"}


def test_use_this_model_snippet_loads_the_same_pipeline(stock_outcomes):
    outcome = stock_outcomes["int8 via DiffusionPipeline"]
    assert outcome["max_diff"] == 0 and outcome["pipeline"] == "DiTPipeline"


def test_stock_diffusers_refuses_activation_recipes_loudly(stock_outcomes):
    outcome = stock_outcomes["int8-a8"]
    assert outcome.get("raised") == "ValueError", outcome
    assert "Unknown quantization type" in outcome["message"] and "load_pipeline" in outcome["message"]
