"""Gallery runs end to end: the files a run writes, bad requests, the digits metrics, and the guard that a
2-process Accelerate run gathers exactly the 1-process run's images and numbers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from html_checks import parse_page
from PIL import Image

import dit_demo.cli.gallery as gallery_cli
from dit_demo.engine.model.resolver import EMBEDDED_MODEL_DIR
from dit_demo.engine.quant.recipes import RECIPES
from dit_demo.engine.timing import Spread, speed_verdict
from dit_demo.metrics import METRICS
from dit_demo.reports.gallery import GalleryConfig, run_gallery, write_gallery
from dit_demo.reports.render import GridLayout, tile_size, upscale

THREADS = torch.get_num_threads()
HAS_EMBEDDED = (EMBEDDED_MODEL_DIR / "model_index.json").is_file()
# Every per-recipe metric the issue asks for (timings, memory, sizes, paired quality) and the multi-GPU fields.
RECIPE_METRICS = (
    "latency_s",
    "latency_median_s",
    "per_step_s",
    "latency_per_image_s",
    "images_per_s",
    "peak_memory_bytes",
    "weight_bytes",
    "checkpoint_bytes",
    "psnr_db",
    "ssim",
    "latency_ratio",
    "weight_bytes_ratio",
    "checkpoint_bytes_ratio",
)
TINY_ARGS = [
    "--model",
    "tiny-random",
    "--recipes",
    "bf16,int8,int8-a8",
    "--labels",
    "tench,207",
    "--seeds",
    "3,4",
    "--steps",
    "3",
    "--calibration-steps",
    "3",
    "--batch-size",
    "3",  # 4 jobs → batches of 3 and 1: uneven shares across 2 processes
    "--no-progress",
]


@pytest.fixture(scope="module")
def tiny_gallery(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gallery") / "tiny"
    assert gallery_cli.main([*TINY_ARGS, "--out", str(out)]) == 0
    return out


def check_gallery_files(out: Path, recipes: list[str], digits: bool) -> dict:
    """Shared checks: grid geometry, JSON completeness, page references."""
    data = json.loads((out / "results.json").read_text())
    assert list(data["recipes"]) == recipes  # reference first
    rows, cols = len(data["images"]), len(recipes)
    side = max(Image.open(out / data["images"][0]["recipes"][recipes[0]]["image"]).size)
    tile = tile_size(side, data["config"]["min_tile"])
    grid = Image.open(out / "grid.png")
    assert grid.size == GridLayout(rows=rows, cols=cols, tile=tile).size
    assert grid.size == (2 * 8 + 150 + cols * tile + (cols - 1) * 4, 2 * 8 + 24 + rows * tile + (rows - 1) * 4)
    diff_grid = Image.open(out / "diff_grid.png")
    assert diff_grid.width == 2 * 8 + 150 + (cols - 1) * tile + (cols - 2) * 4 and diff_grid.height == grid.height
    for recipe, row in data["recipes"].items():
        missing = [k for k in RECIPE_METRICS if k not in row]
        assert not missing, f"{recipe} lacks {missing}"
        assert row["num_images"] == rows and row["latency_s"] > 0
        if RECIPES[recipe].savable:
            assert row["checkpoint_bytes"] > 0
        else:  # int8-dynamic: never saved, so no checkpoint to measure (the notes say why)
            assert row["checkpoint_bytes"] is None and row["checkpoint_bytes_ratio"] is None
        if digits:
            assert 0 <= row["digit_accuracy"] <= 1 and row["fid"] is not None and row["fid"] >= 0
            assert row["fid_num_images"] == rows
    ref = data["recipes"][recipes[0]]
    assert ref["psnr_db"] is None and ref["ssim"] == pytest.approx(1.0) and ref["latency_ratio"] == 1.0
    ref_spread = Spread.from_dict(ref["latency_per_image_spread"])
    for recipe in recipes:  # speed verdicts rest on the interleaved batches (engine.timing), one batch: none
        row = data["recipes"][recipe]
        spread = Spread.from_dict(row["latency_per_image_spread"])
        assert spread.runs == row["num_batches"] and sum(spread.samples) < sum(row["batch_latencies_s"]) + 1e-3
        if recipe != recipes[0]:
            verdict = row.get("speed_verdict")
            assert (verdict is not None) == (spread.runs > 1)
            assert verdict is None or verdict["direction"] == speed_verdict(ref_spread, spread).direction
    for recipe in recipes[1:]:
        assert data["recipes"][recipe]["weight_bytes"] < ref["weight_bytes"]
        assert not RECIPES[recipe].savable or data["recipes"][recipe]["checkpoint_bytes"] < ref["checkpoint_bytes"]
    assert data["num_processes"] >= 1 and data["images_per_s"] > 0 and len(data["processes"]) == data["num_processes"]
    env = data["environment"]
    assert env["machine"] and env["torch"] and env["diffusers"] and env["optimum_quanto"] and env["date"]
    assert len(env["load_average"]) == 2 and all(v is None or v >= 0 for v in env["load_average"])  # recorded
    for item in data["images"]:
        for recipe in recipes[1:]:
            entry = item["recipes"][recipe]
            assert (out / entry["diff"]).is_file() and "psnr_db" in entry and "ssim" in entry
            assert ("predicted_digit" in entry) == digits
    page = parse_page(out / "index.html")
    assert page.tables == 2 and page.refs
    missing = [ref for ref in page.refs if not (out / ref).is_file()]
    assert not missing, f"index.html references missing files {missing[:3]}"
    image_refs = [r for r in page.refs if r.startswith("images/")]
    assert len(image_refs) == rows * cols
    md = (out / "results.md").read_text()
    assert all(f"| {r} |" in md for r in recipes) and env["machine"] in md
    unsaved = [r for r in recipes if not RECIPES[r].savable]
    assert ("No checkpoint for " + ", ".join(unsaved) in md) if unsaved else "No checkpoint" not in md
    return data


def test_tiny_gallery_writes_grid_html_json_md(tiny_gallery):
    data = check_gallery_files(tiny_gallery, ["bf16", "int8", "int8-a8"], digits=False)
    assert [(i["class_name"], i["seed"]) for i in data["images"]] == [
        ("tench", 3),
        ("tench", 4),
        ("golden retriever", 3),
        ("golden retriever", 4),
    ]
    assert data["recipes"]["int8"]["psnr_db"] > 30  # int8 stays close to the reference on the tiny model
    assert data["num_processes"] == 1 and data["config"]["seeds"] == [3, 4]
    grid = Image.open(tiny_gallery / "grid.png").convert("RGB")
    first = Image.open(tiny_gallery / data["images"][0]["recipes"]["bf16"]["image"]).convert("RGB")
    x, y = GridLayout(rows=4, cols=3, tile=96).cell(0, 0)
    assert np.array_equal(np.asarray(grid.crop((x, y, x + 96, y + 96))), np.asarray(upscale(first, 96)))


def test_bad_request_exits_2(tmp_path, capsys):
    args = ["--model", "tiny-random", "--steps", "2", "--no-progress", "--out", str(tmp_path / "g")]
    assert gallery_cli.main([*args, "--recipes", "bf16,int9"]) == 2
    assert "int9" in capsys.readouterr().err
    assert gallery_cli.main([*args, "--labels", "golden retreiver"]) == 2
    assert "Did you mean" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_accelerate_gallery_equals_one_process(tmp_path):
    """The trained digits model when present (so class accuracy and FID are compared too), else the tiny one.
    70 digits: FID from fewer images than the judge's 64 features is ill-conditioned (NaN or not, by rounding)."""
    labels = "all" if HAS_EMBEDDED else "1,7"
    args = [*TINY_ARGS, "--labels", labels, "--seeds", "0,1,2,3,4,5,6", "--batch-size", "8", "--steps", "4"]
    args += ["--max-rows-shown", "100"]
    args[args.index("tiny-random")] = "embedded" if HAS_EMBEDDED else "tiny-random"  # later flags win
    one_dir, out = tmp_path / "one", tmp_path / "two"
    # CPU kernels split reductions by thread count: same threads per process as the launched run, same bits
    assert gallery_cli.main([*args, "--threads", "1", "--out", str(one_dir)]) == 0
    assert torch.get_num_threads() == THREADS  # --threads is restored afterwards
    env = {
        **os.environ,
        "ACCELERATE_USE_CPU": "1",  # PartialState(cpu=True) → MULTI_CPU over gloo
        "OMP_NUM_THREADS": "1",
        "HF_HOME": str(tmp_path / "hf"),  # no stray accelerate default config
        "HF_HUB_OFFLINE": "1",
    }
    launcher = Path(sys.executable).with_name("accelerate")
    command = [str(launcher)] if launcher.exists() else [sys.executable, "-m", "accelerate.commands.launch"]
    command += [
        *(["launch"] if launcher.exists() else []),
        "--multi_gpu",  # `--cpu` would use accelerate's simple launcher: one process
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
        "-m",
        "dit_demo.cli.gallery",
        *args,
        "--out",
        str(out),
    ]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = json.loads((one_dir / "results.json").read_text())
    two = json.loads((out / "results.json").read_text())
    assert two["num_processes"] == 2 and [p["process_index"] for p in two["processes"]] == [0, 1]
    jobs = len(one["images"])
    assert sum(p["images"] for p in two["processes"]) == jobs * 3  # every job × 3 recipes, split without overlap
    assert all(p["images"] > 0 for p in two["processes"]) and two["images_per_s"] > 0
    for a, b in zip(one["images"], two["images"], strict=True):
        assert (a["class_id"], a["seed"]) == (b["class_id"], b["seed"])
        for recipe, entry in a["recipes"].items():
            x = np.asarray(Image.open(one_dir / entry["image"]))
            y = np.asarray(Image.open(out / b["recipes"][recipe]["image"]))
            assert np.array_equal(x, y), f"{recipe} row {a['row']} differs between 1 and 2 processes"
            assert {k: v for k, v in b["recipes"][recipe].items()} == entry  # PSNR, SSIM, predicted digit, files
    quality_keys = ("psnr_db", "ssim", "weight_bytes", "checkpoint_bytes", "num_images", "digit_accuracy", "fid")
    for recipe in one["recipes"]:
        for key in quality_keys:
            assert two["recipes"][recipe].get(key) == one["recipes"][recipe].get(key), (recipe, key)
    assert ("fid" in one["recipes"]["bf16"]) == HAS_EMBEDDED


def _fake_digit(image: Image.Image) -> int:
    return int(np.asarray(image, dtype=np.int64).sum()) % 10


def test_digits_model_gets_accuracy_and_fid_per_recipe(tmp_path, monkeypatch):
    """The digits path wired end to end on the tiny model renamed to ten digits, with a stand-in judge (the
    real judge is exercised by the embedded test below once the model is trained)."""
    from dit_demo.compare import DIGIT_NAMES
    from dit_demo.embedded import quality
    from dit_demo.engine.generate import build_reference

    calls = []
    monkeypatch.setattr(
        quality,
        "digit_predictions",
        lambda images: (np.array([_fake_digit(i) for i in images]), np.full(len(images), 0.5, dtype=np.float32)),
    )
    monkeypatch.setattr(quality, "fid", lambda images: calls.append(len(images)) or 12.5 + len(calls))
    monkeypatch.setattr(quality, "heldout_digits", lambda size=16: (None, list(range(360))))
    monkeypatch.setattr(quality, "get_classifier", lambda path=None: SimpleNamespace(feature_dim=64))
    reference = build_reference("tiny-random", device="cpu")
    reference.pipe.register_to_config(id2label={str(i): name for i, name in enumerate(DIGIT_NAMES)})
    config = GalleryConfig(
        source="tiny-digits", recipes=["int8", "bf16"], labels=None, seeds=[0], steps=2, batch_size=5
    )
    result = run_gallery(config, progress=False, reference=reference)
    assert result is not None and result.digits and result.recipes == ["bf16", "int8"]
    write_gallery(result, tmp_path)
    data = check_gallery_files(tmp_path, ["bf16", "int8"], digits=True)
    assert [i["class_id"] for i in data["images"]] == list(range(10))  # default labels: every digit
    assert calls == [10, 10] and [data["recipes"][r]["fid"] for r in ("bf16", "int8")] == [13.5, 14.5]
    for recipe, row in data["recipes"].items():
        predicted = [_fake_digit(Image.open(tmp_path / i["recipes"][recipe]["image"])) for i in data["images"]]
        assert [i["recipes"][recipe]["predicted_digit"] for i in data["images"]] == predicted
        assert row["digit_accuracy"] == pytest.approx(np.mean(np.array(predicted) == np.arange(10)))
        assert row["fid_reference"].endswith("(360)")
    md = (tmp_path / "results.md").read_text()
    assert METRICS["digit_accuracy"].header in md and "FID" in md and "10 generated images" in md


@pytest.mark.slow
@pytest.mark.skipif(not HAS_EMBEDDED, reason="the embedded digits model is not trained yet")
def test_embedded_gallery_has_accuracy_and_fid(tmp_path):
    out = tmp_path / "digits"
    recipes = ["bf16", "int8", "int8-dynamic"]  # int8-dynamic: a CPU recipe, in the gallery where it runs
    args = ["--model", "embedded", "--recipes", ",".join(recipes), "--seeds", "0", "--steps", "10", "--no-progress"]
    assert gallery_cli.main([*args, "--batch-size", "10", "--out", str(out)]) == 0
    data = check_gallery_files(out, recipes, digits=True)
    assert data["recipes"]["int8-dynamic"]["psnr_db"] > 30 and data["recipes"]["int8-dynamic"]["digit_accuracy"] >= 0.7
    assert [i["class_id"] for i in data["images"]] == list(range(10))  # default: every digit
    assert data["recipes"]["bf16"]["digit_accuracy"] >= 0.7  # a trained model draws mostly the asked digit
