"""The shipped digits model, its judge and its scripts: loads offline, draws the digit asked for, survives int8."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from dit_demo.embedded import quality
from dit_demo.embedded.classifier import CLASSIFIER_DIR, load_classifier
from dit_demo.engine.request import SamplingRequest

DIGITS_DIR = Path(__file__).resolve().parents[2] / "dit_demo" / "engine" / "model" / "data" / "digits"
LABELS = [i % 10 for i in range(20)]
SEEDS = list(range(100, 120))  # not the seeds of the README table (0..499)


@pytest.fixture(scope="module")
def reference():
    from dit_demo.engine.generate import build_reference

    return build_reference("embedded", device="cpu")


@pytest.fixture(scope="module")
def reference_images(reference):
    from dit_demo.engine.generate import generate

    return generate(
        reference, SamplingRequest.create(LABELS, seeds=SEEDS, steps=25, guidance_scale=4.0, max_batch=len(LABELS))
    ).images


def test_shipped_folder_is_small_safetensors_with_digit_labels():
    index = json.loads((DIGITS_DIR / "model_index.json").read_text())
    assert index["_class_name"] == "DiTPipeline"
    assert index["id2label"] == {
        str(i): n
        for i, n in enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    }
    files = [p for p in DIGITS_DIR.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in {".bin", ".pt", ".pth", ".ckpt", ".pkl"}]
    assert len([p for p in files if p.suffix == ".safetensors"]) == 2
    assert sum(p.stat().st_size for p in files) <= 20e6
    assert (CLASSIFIER_DIR / "model.safetensors").is_file() and (CLASSIFIER_DIR / "heldout.safetensors").is_file()


def test_stock_diffusers_loads_it_without_missing_weight_warnings():
    """No 'newly initialized' / 'missing keys' warnings: every weight comes from the files."""
    from diffusers import DiTPipeline
    from diffusers.utils import logging as dlogging

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = dlogging.get_logger("diffusers")
    logger.addHandler(handler)
    try:
        pipe = DiTPipeline.from_pretrained(DIGITS_DIR)
    finally:
        logger.removeHandler(handler)
    bad = [
        r.getMessage()
        for r in records
        if any(w in r.getMessage().lower() for w in ("newly initialized", "missing", "not initialized", "unexpected"))
    ]
    assert not bad
    assert pipe.transformer.config.num_embeds_ada_norm == 1000
    assert pipe.transformer.config.out_channels == pipe.transformer.config.in_channels
    assert pipe.get_label_ids(["seven"]) == [7]


def test_load_pipeline_default_is_the_embedded_model(reference):
    pipe = reference.pipe
    assert pipe.transformer.dtype == torch.float32
    assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert pipe.scheduler.config.beta_schedule == "linear"
    assert pipe.scheduler.config.beta_start == pytest.approx(1e-4) and pipe.scheduler.config.beta_end == 0.02
    assert sorted(pipe.labels.values()) == list(range(10))


def test_generates_the_requested_digit(reference_images):
    assert reference_images[0].size == (16, 16) and reference_images[0].mode == "RGB"
    accuracy = quality.class_accuracy(reference_images, LABELS)
    assert accuracy >= 0.9, accuracy


def test_int8_keeps_accuracy_and_pixels(reference, reference_images):
    from dit_demo.engine.generate import build_variant, generate
    from dit_demo.engine.metrics import psnr

    variant = build_variant(reference, "int8")
    images = generate(
        variant, SamplingRequest.create(LABELS, seeds=SEEDS, steps=25, guidance_scale=4.0, max_batch=len(LABELS))
    ).images
    fp_acc = quality.class_accuracy(reference_images, LABELS)
    q_acc = quality.class_accuracy(images, LABELS)
    assert q_acc >= fp_acc - 0.05, (q_acc, fp_acc)  # at most one of 20 images lost
    assert psnr(images, reference_images) >= 25.0


def test_classifier_is_accurate_on_heldout_real_digits():
    images, labels = quality.heldout_digits()
    assert images.shape == (360, 1, 16, 16) and labels.shape == (360,)
    assert quality.class_accuracy(images, labels.numpy(), load_classifier()) >= 0.97


def test_shipped_heldout_split_is_the_one_training_holds_out():
    """The judge's honest accuracy relies on this: the shipped array is exactly train.py's held-out split."""
    pytest.importorskip("sklearn")
    from dit_demo.embedded.train import load_digit_splits

    splits = load_digit_splits()
    images, labels = quality.heldout_digits()
    assert torch.equal(labels, splits.heldout_y)
    assert torch.equal((splits.heldout_x * 255).round(), (images * 255).round())
    assert len(splits.train_y) + len(splits.heldout_y) == 1797


def test_fid_is_zero_on_itself_and_large_for_noise():
    images, _ = quality.heldout_digits()
    assert abs(quality.fid(images)) < 1e-3
    noise = torch.rand(200, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    blank = torch.zeros(200, 3, 16, 16) + 0.01 * noise
    assert quality.fid(noise) > 10 * quality.fid(images[:180], reference=images[180:]) > 0
    assert quality.fid(blank) > 10 * quality.fid(images[:180], reference=images[180:])


def test_quality_accepts_pil_numpy_and_tensors(reference_images):
    arr = np.stack([np.asarray(im) for im in reference_images])
    from_pil, _ = quality.digit_predictions(reference_images)
    from_np, _ = quality.digit_predictions(arr)
    from_pt, conf = quality.digit_predictions(torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255)
    assert np.array_equal(from_pil, from_np) and np.array_equal(from_np, from_pt)
    assert ((conf > 0) & (conf <= 1)).all()
    big = [im.resize((64, 64)) for im in reference_images]
    assert quality.class_accuracy(big, LABELS) >= 0.8


def test_training_script_end_to_end(tmp_path):
    pytest.importorskip("sklearn")
    from dit_demo.embedded import train
    from dit_demo.engine.model.loading import load_pipeline

    threads = torch.get_num_threads()
    config = train.TrainConfig(out=tmp_path, dit_steps=3, vae_steps=2, classifier_steps=3, check_samples=2, threads=1)
    try:
        summary = train.train(config)
    finally:
        torch.set_num_threads(threads)
    assert summary["steps"]["dit"] == 3 and summary["split"] == {"seed": 0, "train": 1437, "heldout": 360}
    pipe = load_pipeline(str(tmp_path / "digits"), device="cpu")
    assert pipe.config.id2label["3"] == "three"
    out = pipe([1, 2], num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np")
    assert out.images.shape == (2, 16, 16, 3) and np.isfinite(out.images).all()
    assert load_classifier(tmp_path / "classifier").feature_dim == 64


def test_evaluate_writes_table(tmp_path, outer_threads):
    from dit_demo.reports.evaluate import EvaluateConfig, evaluate

    config = EvaluateConfig(
        out=tmp_path,
        samples=10,
        guidances=(4.0,),
        recipes=("bf16", "int8", "int8:fast"),
        steps=5,
        batch=10,
        threads=1,
        baseline=False,
    )
    report = evaluate(config)
    assert torch.get_num_threads() == outer_threads  # ran on 1 thread, the process's count put back
    assert ", 1 threads, " in report["meta"]["machine"]
    assert [r["recipe"] for r in report["rows"]] == ["bf16", "int8", "int8:fast"]
    assert 0 <= report["rows"][1]["digit_accuracy"] <= 1 and report["rows"][1]["psnr_db"] > 10
    # the fast path's layers: same int8 numerics (int8 label tables too), a smaller transformer
    fast, plain = report["rows"][2], report["rows"][1]
    assert fast["psnr_db"] > 30 and fast["transformer_mb"] < plain["transformer_mb"]
    assert json.loads((tmp_path / "quality.json").read_text())["rows"][0]["psnr_db"] is None
    assert "| int8 | 4 |" in (tmp_path / "quality.md").read_text()


def test_evaluate_puts_the_threads_back_when_it_fails(tmp_path, monkeypatch, outer_threads):
    from dit_demo.reports import evaluate as module

    seen = []

    def failing_load(*_, **__):
        seen.append(torch.get_num_threads())
        raise RuntimeError("no model")

    monkeypatch.setattr(module, "build_reference", failing_load)
    with pytest.raises(RuntimeError, match="no model"):
        module.evaluate(module.EvaluateConfig(out=tmp_path, threads=1))
    assert seen == [1] and torch.get_num_threads() == outer_threads


def test_evaluate_reads_reports_written_before_the_vocabulary():
    """quality.json rows of older runs (`accuracy`, `psnr_vs_fp`, `ssim_vs_fp`) still render and check."""
    from dit_demo.metrics import canonical
    from dit_demo.reports.evaluate import check_targets, to_markdown

    old = [
        {"recipe": "bf16", "guidance": 4.0, "accuracy": 0.99, "fid": 30.0, "psnr_vs_fp": None, "ssim_vs_fp": 1.0},
        {"recipe": "int8", "guidance": 4.0, "accuracy": 0.985, "fid": 31.0, "psnr_vs_fp": 35.2, "ssim_vs_fp": 0.98},
    ]
    for row in old:
        row.update(transformer_mb=11.5, s_per_image=0.01)
    new = [canonical(r) for r in old]
    assert new[0]["psnr_db"] is None and new[1]["digit_accuracy"] == 0.985 and new[1]["ssim"] == 0.98
    assert canonical({"psnr_vs_fp": float("inf")})["psnr_db"] is None
    assert check_targets(old) == check_targets(new)
    meta = {"samples": 10, "seed": 0, "steps": 5, "machine": "cpu", "date": "today"}
    text = to_markdown({"meta": meta, "rows": old, "targets": check_targets(old)})
    assert text == to_markdown({"meta": meta, "rows": new, "targets": check_targets(new)})
    assert "| recipe | guidance | digits read as asked (%) | FID | PSNR vs full precision (dB) |" in text
    assert "| full precision (fp32) | 4 | 99.0 | 30.00 | identical | 1.0000 |" in text
    assert "| int8 | 4 | 98.5 | 31.00 | 35.2 | 0.9800 |" in text


def test_recipe_specs_parse_keep_and_fast():
    from dit_demo.reports.evaluate import parse_recipe

    assert parse_recipe("int8-a8:keep=adaln+embedders,fast") == ("int8-a8", ["adaln", "embedders"], True)
    assert parse_recipe("int8") == ("int8", [], False)
    with pytest.raises(ValueError, match="unknown recipe option"):
        parse_recipe("int8:turbo")
