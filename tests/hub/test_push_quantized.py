"""`dit-demo push-model` (hub/push_quantized.py): the written folder and card (offline), then push/load through the
Hub stand-in."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from PIL import Image
from stand_in_env import ALICE, BOB_READ, CAROL, point_client_at

from dit_demo.cli.publish import push_model
from dit_demo.engine.generate import build_reference, generate
from dit_demo.engine.model.loading import load_pipeline
from dit_demo.engine.model.resolver import EMBEDDED_MODEL_DIR
from dit_demo.engine.model.serialization import QuantizedDiTTransformer2DModel
from dit_demo.engine.request import SamplingRequest
from dit_demo.engine.threads import use_threads
from dit_demo.hub.card import CardError, base_model_info, build_card, python_blocks, validate_card
from dit_demo.hub.card_text import SOURCE_PLACEHOLDER
from dit_demo.hub.io import HubError, Target, publish_folder
from dit_demo.hub.model_repo import ModelRepoSpec, reusable
from dit_demo.metrics import METRICS

ROOT = Path(__file__).resolve().parents[2]
REPO = "alice/tiny-dit-int8"
ARGS = ["--model", "tiny-random", "--recipe", "int8", "--repo-id", REPO, "--steps", "4"]
ARGS += ["--labels", "golden retriever,tench", "--seeds", "7"]
SOURCE_URL = "https://example.org/dit-quanto-demo.git"  # --push needs one (no public URL of the project is known)
PIPELINE_FILES = [
    "model_index.json",
    "scheduler/scheduler_config.json",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "transformer/config.json",
    "transformer/diffusion_pytorch_model.safetensors",
    "transformer/quanto_qmap.json",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One dry run (offline: the project conftest's HF_HUB_OFFLINE=1 is in force)."""
    out = tmp_path_factory.mktemp("push") / "repo"
    assert push_model.main([*ARGS, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def measured(built) -> dict:
    return json.loads((built / "measurements.json").read_text())


def pixels(path_or_image) -> np.ndarray:
    image = path_or_image if isinstance(path_or_image, Image.Image) else Image.open(path_or_image)
    return np.asarray(image.convert("RGB"))


def push(out: Path, *extra: str) -> int:
    return push_model.main([*ARGS, "--out", str(out), "--source-url", SOURCE_URL, "--push", *extra])


# -- the written folder and card (no Hub) ------------------------------------------------------------------------
def test_dry_run_writes_a_complete_repo_folder(built, measured, capsys):
    expected = PIPELINE_FILES + ["README.md", "gallery.png", "measurements.json", "dit_demo.json"]
    expected += [s["file"] for s in measured["samples"]]
    for name in expected:
        assert (built / name).is_file(), name
    assert not list(built.rglob("*.bin")) and not list(built.parent.glob(".repo.staging-*"))
    index = json.loads((built / "model_index.json").read_text())
    assert index["_class_name"] == "DiTPipeline" and index["id2label"]["207"].startswith("golden retriever")
    assert measured["request"]["class_ids"] == [207, 0] and measured["request"]["seeds"] == [7, 8]
    gallery = Image.open(built / "gallery.png")
    assert gallery.width > 2 * 128 and gallery.height > 2 * 128  # 2 rows x 2 columns of upscaled tiles


def test_card_metadata_is_what_the_hub_understands(built, measured):
    card = ModelCard.load(built / "README.md")
    meta = card.data.to_dict()
    assert meta["library_name"] == "diffusers" and meta["pipeline_tag"] == "unconditional-image-generation"
    assert meta["license"] == "apache-2.0"  # random weights: the project's license, and the card says so
    assert "base_model" not in meta and "random-weights" in meta["tags"]
    assert {"quanto", "int8", "dit", "diffusion-transformer", "class-conditional"} <= set(meta["tags"])
    assert meta["dit_demo"] == {"schema": 1, "source": "tiny-random", "recipe": "int8"}
    assert "seeded random weights" in card.text
    validate_card(built / "README.md", measured)


def test_card_for_a_hub_base_inherits_its_license(built, measured, tmp_path):
    info = base_model_info("facebook/DiT-XL-2-256", "hub")
    assert (info.base_model, info.license) == ("facebook/DiT-XL-2-256", "cc-by-nc-4.0")
    as_hub = {**measured, "source": "facebook/DiT-XL-2-256", "source_kind": "hub", "base": info.__dict__}
    build_card(as_hub).save(tmp_path / "README.md")
    meta = ModelCard.load(tmp_path / "README.md").data.to_dict()
    assert meta["base_model"] == "facebook/DiT-XL-2-256" and meta["base_model_relation"] == "quantized"
    assert meta["license"] == "cc-by-nc-4.0" and "random-weights" not in meta["tags"]
    assert base_model_info("embedded", "embedded").license == "apache-2.0"


def table_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def number(cell: str) -> float:
    return float(re.match(r"[-\d,.]+", cell).group(0).replace(",", ""))


def test_card_numbers_are_the_measured_ones(built, measured):
    rows = table_rows((built / "README.md").read_text())
    sizes = measured["sizes"]
    size_row = rows["transformer checkpoint on disk"]
    assert (
        number(size_row[0])
        == sizes["transformer_checkpoint_bytes"]
        == sum(p.stat().st_size for p in (built / "transformer").iterdir())
    )
    assert number(size_row[1]) == sizes["base_transformer_checkpoint_bytes"] > sizes["transformer_checkpoint_bytes"]
    by_recipe = {r["recipe"]: r for r in measured["rows"]}
    assert number(rows["transformer weights in memory"][0]) == by_recipe["int8"]["weight_bytes"]
    assert number(rows["transformer weights in memory"][1]) == by_recipe["bf16"]["weight_bytes"]
    reference = next(k for k in rows if k.startswith("reference (float32 on cpu"))  # its real dtype, not "bf16"
    dynamic = next(k for k in rows if k.startswith("int8-dynamic (from this repo's weights"))  # measured on a CPU
    assert (
        set(by_recipe) == {"bf16", "int8", "int8-dynamic"} and by_recipe["int8-dynamic"]["speed_verdict"]["runs"] == 3
    )
    for label, recipe in ((reference, "bf16"), ("int8", "int8"), (dynamic, "int8-dynamic")):
        latency, per_step, peak, psnr_cell, ssim_cell = rows[label][:5]
        row = by_recipe[recipe]
        assert abs(number(latency) - row["latency_s"]) <= 5e-5 and abs(number(per_step) - row["per_step_s"]) <= 5e-5
        assert number(peak) == row["peak_memory_bytes"] > 0
        assert abs(number(ssim_cell) - row["ssim"]) <= 5e-5
        if row["psnr_db"] is None:
            assert psnr_cell.startswith("∞")
        else:
            assert abs(number(psnr_cell) - row["psnr_db"]) <= 0.005
    assert by_recipe["int8"]["psnr_db"] is not None and by_recipe["bf16"]["psnr_db"] is None
    machine = measured["machine"]
    assert machine["cpu"] in (built / "README.md").read_text() and machine["device"] == "cpu"


def test_validate_card_catches_a_number_that_was_not_measured(built, measured, tmp_path):
    text = (built / "README.md").read_text()
    real = f"{measured['sizes']['transformer_checkpoint_bytes']:,} B"
    (tmp_path / "README.md").write_text(text.replace(real, "1,234 B"))
    with pytest.raises(CardError, match="does not show"):
        validate_card(tmp_path / "README.md", measured)
    (tmp_path / "README.md").write_text(text.replace("library_name: diffusers", "library_name: quanto"))
    with pytest.raises(CardError, match="library_name"):
        validate_card(tmp_path / "README.md")


def test_rerun_without_overwrite_reuses_and_foreign_folder_is_refused(built, tmp_path, capsys):
    assert push_model.main([*ARGS, "--out", str(built)]) == 0
    assert "reusing" in capsys.readouterr().out
    (tmp_path / "other").mkdir()
    assert push_model.main([*ARGS, "--out", str(tmp_path / "other")]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_push_needs_a_source_url_and_a_new_one_only_relinks_the_card(built, measured, tmp_path, capsys):
    assert push_model.main([*ARGS, "--out", str(tmp_path / "none"), "--push"]) == 2
    assert "--source-url" in capsys.readouterr().err and not (tmp_path / "none").exists()
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    assert SOURCE_PLACEHOLDER in (copy / "README.md").read_text()
    spec = ModelRepoSpec(repo_id=REPO, model="tiny-random", recipe="int8", source_url=SOURCE_URL)
    relinked = reusable(copy, spec)
    assert relinked["source_url"] == SOURCE_URL and f"--source-url {SOURCE_URL} --push" in relinked["command"]
    assert {k: v for k, v in relinked.items() if k not in ("source_url", "command")} == {
        k: v for k, v in measured.items() if k not in ("source_url", "command")
    }  # the same measurements: only the card's links changed
    card = (copy / "README.md").read_text()
    assert SOURCE_PLACEHOLDER not in card and f"git clone {SOURCE_URL} dit-quanto-demo" in card
    assert json.loads((copy / "measurements.json").read_text()) == relinked
    assert (copy / "gallery.png").read_bytes() == (built / "gallery.png").read_bytes()


# -- through the Hub stand-in --------------------------------------------------------------------------------------
def test_push_is_one_commit_and_load_pipeline_gives_the_same_images(built, measured, hub_env, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", ALICE)
    before = hub_env.commit_count(REPO)
    assert push(built) == 0
    output = capsys.readouterr()
    assert "pushed:" in output.out and ALICE not in output.out + output.err
    remote = hub_env.files(REPO)
    local = {p.relative_to(built).as_posix(): p.read_bytes() for p in built.rglob("*") if p.is_file()}
    assert {k: v for k, v in remote.items() if k != ".gitattributes"} == local
    assert hub_env.commit_count(REPO) == max(before, 1) + 1  # repo creation + ONE upload commit
    stored = hub_env.repos[("model", REPO)]
    assert all(stored.commits[stored.refs["main"]][p].lfs for p in local if p.endswith(".safetensors"))

    pipe = load_pipeline(REPO, device="cpu")  # snapshot_download through the stand-in
    request = measured["request"]
    with use_threads(torch.get_num_threads()):  # the repo's samples are made at torch's default, as stock users run
        result = generate(
            pipe, SamplingRequest.create(request["class_ids"], seeds=request["seeds"], steps=request["steps"])
        )
    for image, sample in zip(result.images, measured["samples"]):
        assert np.array_equal(pixels(image), pixels(built / sample["file"]))
    with use_threads(torch.get_num_threads()):
        local_result = generate(
            build_reference(str(built), device="cpu"),
            SamplingRequest.create(request["class_ids"], seeds=request["seeds"], steps=request["steps"]),
        )
    assert all(a.tobytes() == b.tobytes() for a, b in zip(result.images, local_result.images))
    qmodel = QuantizedDiTTransformer2DModel.from_pretrained(REPO, subfolder="transformer")
    remote_q = qmodel._wrapped.transformer_blocks[0].attn1.to_q.weight
    assert torch.equal(remote_q.dequantize(), pipe.transformer.transformer_blocks[0].attn1.to_q.weight.dequantize())

    assert push(built) == 0  # rerun: same repo state, no empty commit
    assert hub_env.commit_count(REPO) == max(before, 1) + 1 and hub_env.files(REPO) == remote
    for path in built.rglob("*"):
        assert not path.is_file() or ALICE.encode() not in path.read_bytes()


def test_the_cards_own_snippets_run_and_give_the_sample_image(built, measured, hub_env, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", ALICE)
    assert push(built) == 0
    blocks = python_blocks((built / "README.md").read_text())
    assert len(blocks) == 3 and all(f'"{REPO}"' in block for block in blocks)
    assert "DiTPipeline.from_pretrained" in blocks[0]  # stock diffusers first: int8 is stock-loadable
    monkeypatch.chdir(tmp_path)
    for block in blocks[1:]:  # the stock one runs in a clean venv (test_card_snippets.py): diffusers reads HF_ENDPOINT
        exec(compile(block, "README.md snippet", "exec"), {"__name__": "__snippet__"})
        assert np.array_equal(pixels(tmp_path / "sample.png"), pixels(built / measured["samples"][0]["file"]))
        (tmp_path / "sample.png").unlink()


@pytest.mark.parametrize(
    ("token", "repo_id", "code", "needle"),
    [
        (None, "alice/no-token", 4, "HF_TOKEN"),
        ("hf_not_a_real_token", "alice/bad-token", 4, "rejected the token (401)"),
        (BOB_READ, "bob/read-only", 5, "read-only"),
        (CAROL, "alice/not-carols", 5, "cannot write to the namespace 'alice'"),
    ],
)
def test_auth_failures_stop_before_any_work(hub_env, monkeypatch, capsys, tmp_path, token, repo_id, code, needle):
    if token:
        monkeypatch.setenv("HF_TOKEN", token)
    argv = ["--model", "tiny-random", "--recipe", "int8", "--repo-id", repo_id, "--out", str(tmp_path / "o")]
    assert push_model.main([*argv, "--source-url", SOURCE_URL, "--push"]) == code
    err = capsys.readouterr().err
    assert needle in err and (token is None or token not in err)
    assert ("model", repo_id) not in hub_env.repos and not (tmp_path / "o").exists()


def test_403_from_the_hub_itself_is_mapped(hub_env, tmp_path):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "a.json").write_text("{}")
    with pytest.raises(HubError, match="no write access") as info:
        publish_folder(tmp_path / "f", Target("alice/x", token=BOB_READ), "m")
    assert info.value.exit_code == 5 and ("model", "alice/x") not in hub_env.repos


def test_unreachable_hub(hub_env, monkeypatch, capsys, tmp_path):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    point_client_at(monkeypatch, f"http://127.0.0.1:{port}", tmp_path / "c")
    monkeypatch.setenv("HF_TOKEN", ALICE)
    argv = ["--model", "tiny-random", "--repo-id", "alice/x", "--out", str(tmp_path / "o"), "--push"]
    assert push_model.main([*argv, "--source-url", SOURCE_URL]) == 6
    err = capsys.readouterr().err
    assert "unreachable" in err and ALICE not in err and not (tmp_path / "o").exists()


def test_existing_repo_with_a_different_card_is_refused(built, hub_env, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HF_TOKEN", ALICE)
    assert push(built) == 0
    commits = hub_env.commit_count(REPO)
    other = ["--model", "tiny-random", "--recipe", "int8-a8", "--repo-id", REPO, "--out", str(tmp_path / "o")]
    assert push_model.main([*other, "--source-url", SOURCE_URL, "--push"]) == 7
    assert "tiny-random / int8" in capsys.readouterr().err
    api = HfApi(endpoint=hub_env.url, token=ALICE)
    api.create_repo("alice/foreign")
    api.upload_file(
        path_or_fileobj=b"---\nlicense: mit\n---\n# someone else's model\n",
        path_in_repo="README.md",
        repo_id="alice/foreign",
    )
    foreign = ["--model", "tiny-random", "--repo-id", "alice/foreign", "--out", str(tmp_path / "o"), "--push"]
    foreign += ["--source-url", SOURCE_URL]
    assert push_model.main(foreign) == 7
    assert "not made by dit_demo" in capsys.readouterr().err
    assert hub_env.commit_count(REPO) == commits and hub_env.commit_count("alice/foreign") == 2
    assert not (tmp_path / "o").exists()


def test_failed_commit_changes_nothing_and_a_rerun_completes(built, hub_env):
    target = Target("alice/flaky", token=ALICE)
    hub_env.fail_next["commit"] = 1
    with pytest.raises(HubError, match="500"):
        publish_folder(built, target, "upload")
    assert set(hub_env.files("alice/flaky")) == {".gitattributes"}  # LFS blobs may be there; no commit is
    publish_folder(built, target, "upload")
    assert set(hub_env.files("alice/flaky")) - {".gitattributes"} == {
        p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file()
    }


def test_branch_and_pull_request_targets(built, hub_env):
    publish_folder(built, Target("alice/branches", token=ALICE, revision="int8"), "to a branch")
    assert "README.md" in hub_env.files("alice/branches", revision="int8")
    assert set(hub_env.files("alice/branches")) == {".gitattributes"}  # main untouched
    info = publish_folder(built, Target("alice/branches", token=ALICE, create_pr=True), "as a PR")
    assert info.pr_url and "README.md" in hub_env.files("alice/branches", revision="refs/pr/1")
    assert set(hub_env.files("alice/branches")) == {".gitattributes"}


def test_cli_as_users_run_it_with_hf_endpoint(built, fake_hub, tmp_path):
    """The script in a fresh process: HF_ENDPOINT read at import, as on a user's machine."""
    fake_hub.repos.pop(("model", REPO), None)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(
        HF_ENDPOINT=fake_hub.url,
        HF_HUB_DISABLE_XET="1",
        HF_TOKEN=ALICE,
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_OFFLINE="0",
    )
    proc = subprocess.run(
        [sys.executable, "hub/push_quantized.py", *ARGS, "--out", str(built), "--source-url", SOURCE_URL, "--push"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "authenticated as alice" in proc.stdout and ALICE not in proc.stdout + proc.stderr
    assert fake_hub.files(REPO)["README.md"] == (built / "README.md").read_bytes()


def test_digits_models_get_a_digit_accuracy_column(measured, tmp_path):
    rows = [{**row, "digit_accuracy": 0.75 if row["recipe"] == "int8" else 1.0} for row in measured["rows"]]
    build_card({**measured, "rows": rows}).save(tmp_path / "README.md")
    table = table_rows((tmp_path / "README.md").read_text())
    assert table["variant"][-1] == METRICS["digit_accuracy"].label and table["int8"][-1] == "75.0 %"


@pytest.mark.slow
@pytest.mark.skipif(not (EMBEDDED_MODEL_DIR / "model_index.json").is_file(), reason="embedded model not trained yet")
def test_embedded_digits_repo_card(tmp_path):
    argv = ["--model", "embedded", "--recipe", "int8", "--repo-id", "alice/digits-int8", "--out", str(tmp_path / "r")]
    assert push_model.main([*argv, "--labels", "three", "--steps", "5", "--calibration-steps", "5"]) == 0
    measured = json.loads((tmp_path / "r" / "measurements.json").read_text())
    card = validate_card(tmp_path / "r" / "README.md", measured)
    assert card.data.license == "apache-2.0" and METRICS["digit_accuracy"].label in card.text
    quant = next(r for r in measured["rows"] if r["recipe"] == "int8")
    assert f"| {METRICS['digit_accuracy'].text(quant['digit_accuracy'])} |" in card.text


def test_the_app_serves_a_pushed_repo_from_a_cold_cache(built, hub_env, monkeypatch):
    """A pre-quantized Hub id the app has never downloaded: the offered-sources peek cannot see it is quantized,
    the loaded reference does (before: 'already quantized; load the full-precision model')."""
    from dit_demo.app.inputs import Request
    from dit_demo.app.offered import prequantized_recipe
    from dit_demo.app.service import DemoService

    monkeypatch.setenv("HF_TOKEN", ALICE)
    assert push(built) == 0
    assert prequantized_recipe(REPO) is None  # nothing cached yet
    service = DemoService(REPO, device="cpu")
    sampling = SamplingRequest.create(["tench"], seed=0, steps=2)
    comparison = service.compare(Request(REPO, sampling, ["int8"]))
    assert set(comparison.results) == {"int8"} and prequantized_recipe(REPO) == "int8"
