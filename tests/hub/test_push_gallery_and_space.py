"""`dit-demo push-gallery` (dataset repo) and `dit-demo deploy-space` (Gradio Space), dry run and through the
stand-in."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from huggingface_hub import DatasetCard, HfApi, SpaceCard
from stand_in_env import ALICE

from dit_demo.cli.main import main as dit_demo
from dit_demo.cli.publish import deploy_space, push_gallery

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gallery_dir(tmp_path_factory) -> Path:
    """A real `dit-demo gallery` folder, as small as it gets."""
    out = tmp_path_factory.mktemp("gallery") / "g"
    argv = ["--model", "tiny-random", "--recipes", "bf16,int8", "--labels", "tench", "--seeds", "3"]
    argv += ["--steps", "2", "--out", str(out), "--no-progress"]
    assert dit_demo(["gallery", *argv]) == 0
    return out


def test_gallery_dry_run_writes_a_dataset_card_and_viewer_metadata(gallery_dir, tmp_path, capsys):
    out = tmp_path / "ds"
    assert push_gallery.main([str(gallery_dir), "--repo-id", "alice/gallery", "--out", str(out)]) == 0
    assert "dry run" in capsys.readouterr().out
    card = DatasetCard.load(out / "README.md")
    meta = card.data.to_dict()
    assert meta["license"] == "apache-2.0" and "dit_demo-gallery" in meta["tags"]
    assert meta["task_categories"] == ["unconditional-image-generation"]
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert {r["recipe"] for r in rows} == {"bf16", "int8"} and all((out / r["file_name"]).is_file() for r in rows)
    assert meta["configs"][0]["data_files"][0]["path"][-1] == "metadata.jsonl"
    for path in gallery_dir.rglob("*.png"):
        assert (out / path.relative_to(gallery_dir)).read_bytes() == path.read_bytes()


@pytest.mark.skipif(not (ROOT / "gallery" / "embedded" / "results.json").is_file(), reason="no shipped gallery")
def test_dataset_card_of_the_shipped_gallery_counts_the_folder(tmp_path):
    out = tmp_path / "ds"
    assert push_gallery.main([str(ROOT / "gallery" / "embedded"), "--repo-id", "alice/g", "--out", str(out)]) == 0
    text = DatasetCard.load(out / "README.md").text
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    per_recipe = {d.name: len(list(d.glob("*.png"))) for d in (out / "images").iterdir()}
    assert len(rows) == sum(per_recipe.values()) and f"{len(rows)} generated images (" in text
    for recipe, count in per_recipe.items():
        assert f"{count} {recipe}" in text
    run_rows = len(json.loads((out / "results.json").read_text())["images"])
    if run_rows > max(per_recipe.values()):  # the shipped gallery keeps the first rows of a bigger run: say so
        assert f"The run made {run_rows} images per recipe; {max(per_recipe.values())} per recipe are shipped" in text
    source = json.loads((ROOT / "gallery" / "embedded" / "results.json").read_text())["config"]["source"]
    assert [line for line in text.splitlines() if line.startswith("# ")] == [f"# DiT quantization gallery: {source}"]
    files = text.split("## Files", 1)[1].strip().splitlines()
    assert len([line for line in files if line.startswith("- ")]) < 15  # a summary, not one line per file
    diffs = [r["diff_file_name"] for r in rows if r["diff_file_name"]]
    assert diffs and all((out / d).is_file() for d in diffs) and f"{len(diffs)} difference tiles" in text
    assert all(r["diff_file_name"] is None for r in rows if r["recipe"] == "bf16")
    assert "diff" not in rows[1]  # the tile is the `diff_file_name` image column, not a path string


def test_gallery_push_and_refusals(gallery_dir, hub_env, monkeypatch, tmp_path, capsys):
    argv = [str(gallery_dir), "--repo-id", "alice/gallery", "--out", str(tmp_path / "ds"), "--push"]
    assert push_gallery.main(argv) == 4  # no token
    assert ("dataset", "alice/gallery") not in hub_env.repos
    monkeypatch.setenv("HF_TOKEN", ALICE)
    assert push_gallery.main(argv) == 0
    files = hub_env.files("alice/gallery", repo_type="dataset")
    assert "README.md" in files and "metadata.jsonl" in files and hub_env.commit_count("alice/gallery", "dataset") == 2
    api = HfApi(endpoint=hub_env.url, token=ALICE)
    api.create_repo("alice/other-data", repo_type="dataset")
    api.upload_file(
        path_or_fileobj=b"---\nlicense: mit\n---\nnot ours\n",
        path_in_repo="README.md",
        repo_id="alice/other-data",
        repo_type="dataset",
    )
    other = [str(gallery_dir), "--repo-id", "alice/other-data", "--out", str(tmp_path / "ds2"), "--push"]
    assert push_gallery.main(other) == 7
    assert "not made by push_gallery" in capsys.readouterr().err
    assert push_gallery.main([*other, "--overwrite"]) == 0


def test_gallery_without_images_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "results.json").write_text("{}")
    assert push_gallery.main([str(tmp_path / "empty"), "--repo-id", "a/b", "--out", str(tmp_path / "o")]) == 2
    assert "no images" in capsys.readouterr().err


def test_space_folder_front_matter_and_default_model(tmp_path):
    out = tmp_path / "space"
    assert deploy_space.main(["--repo-id", "alice/demo", "--model", "alice/tiny-dit-int8", "--out", str(out)]) == 0
    for name in (
        "app.py",
        "space_app.py",
        "requirements.txt",
        "README.md",
        "dit_demo/engine/model/sources.py",
        "dit_demo/hub/card.py",
    ):
        assert (out / name).is_file(), name
    assert not list(out.rglob("__pycache__"))
    project = yaml.safe_load((ROOT / "README.md").read_text().split("---")[1])
    meta = SpaceCard.load(out / "README.md").data.to_dict()
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == str(project["sdk_version"])
    assert meta["python_version"] == "3.12" and meta["app_file"] == "space_app.py"
    assert meta["models"] == ["alice/tiny-dit-int8"] and meta["preload_from_hub"] == ["alice/tiny-dit-int8"]
    assert (out / "app.py").read_bytes() == (ROOT / "app.py").read_bytes()
    assert meta["suggested_hardware"] == "cpu-basic"
    for tab_file in ("gallery/embedded/grid.png", "gallery/embedded/results.md", "bench/README.md"):
        assert (out / tab_file).read_bytes() == (ROOT / tab_file).read_bytes(), tab_file  # what the tabs show
    assert not list((out / "bench").rglob("*.py")) and not list((out / "bench").rglob("*.sh"))


def test_space_requirements_keep_the_cuda_build_off_a_cpu_space(tmp_path):
    """Checked as text: PyTorch's CPU wheel index cannot be reached from this machine (not verifiable offline)."""
    pins = (ROOT / "requirements.txt").read_text()
    torch_pin = next(line for line in pins.splitlines() if line.startswith("torch=="))
    argv = ["--repo-id", "alice/demo", "--model", "embedded"]
    assert deploy_space.main([*argv, "--out", str(tmp_path / "cpu")]) == 0  # cpu-basic by default
    cpu = (tmp_path / "cpu" / "requirements.txt").read_text().splitlines()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in cpu and f"{torch_pin}+cpu" in cpu
    assert [line for line in cpu if not line.startswith(("#", "--", "torch=="))] == [
        line for line in pins.splitlines() if not line.startswith(("#", "torch=="))
    ]  # every other pin unchanged
    for hardware in ("t4-small", "zero-a10g"):
        assert deploy_space.main([*argv, "--out", str(tmp_path / hardware), "--hardware", hardware]) == 0
        assert (tmp_path / hardware / "requirements.txt").read_text() == pins
        meta = SpaceCard.load(tmp_path / hardware / "README.md").data.to_dict()
        assert meta["suggested_hardware"] == hardware
    assert deploy_space.main([*argv, "--out", str(tmp_path / "x"), "--hardware", "a-toaster"]) == 2


def test_a_compile_cache_is_shipped_where_the_zero_gpu_worker_finds_it(tmp_path, capsys, monkeypatch):
    from dit_demo.app import gpu_call
    from dit_demo.engine.fast.compile_cache import SHIPPED_DIR

    cache = tmp_path / "built" / "dit.bin"
    cache.parent.mkdir()
    cache.write_bytes(b"artifacts")
    argv = ["--repo-id", "alice/zero", "--model", "embedded", "--hardware", "zero-a10g", "--compile-cache", str(cache)]
    assert deploy_space.main([*argv, "--out", str(tmp_path / "no-json")]) == 2  # its description is missing
    assert "--compile-cache" in capsys.readouterr().err and not (tmp_path / "no-json").exists()
    cache.with_suffix(".json").write_text("{}")
    out = tmp_path / "space"
    assert deploy_space.main([*argv, "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / SHIPPED_DIR).iterdir()) == ["dit.bin", "dit.json"]
    assert f"shipped in `{SHIPPED_DIR}/dit.bin`" in SpaceCard.load(out / "README.md").text
    assert deploy_space.main([*argv[:6], "--out", str(tmp_path / "bare")]) == 0  # ZeroGPU without a cache
    assert "is not offered: this Space ships no compile cache" in SpaceCard.load(tmp_path / "bare" / "README.md").text
    monkeypatch.delenv(gpu_call.COMPILE_CACHE_ENV, raising=False)
    monkeypatch.setattr("dit_demo.app.config.ROOT", out)  # the Space folder's app.py sits there
    assert gpu_call.shipped_compile_cache() == out / SHIPPED_DIR / "dit.bin"


def test_a_local_model_folder_is_shipped_inside_the_space(tmp_path):
    from dit_demo.engine.model.resolver import EMBEDDED_MODEL_DIR

    model = tmp_path / "somewhere" / "digits-int8"
    shutil.copytree(EMBEDDED_MODEL_DIR, model)
    (model / "README.md").write_text("a card the Space does not need")
    out = tmp_path / "space"
    assert deploy_space.main(["--repo-id", "alice/demo", "--model", str(model), "--out", str(out)]) == 0
    shipped = out / "models" / "digits-int8"
    assert (shipped / "transformer" / "config.json").is_file() and not (shipped / "README.md").exists()
    code = (out / "space_app.py").read_text()
    assert str(tmp_path) not in code and "with_name('models') / 'digits-int8'" in code
    assert "models/digits-int8" in SpaceCard.load(out / "README.md").text


def test_space_entry_point_sets_the_default_and_a_variable_overrides_it(tmp_path):
    out = tmp_path / "space"
    assert deploy_space.main(["--repo-id", "alice/demo", "--model", "embedded", "--out", str(out)]) == 0
    stub = tmp_path / "run"
    stub.mkdir()
    (stub / "space_app.py").write_bytes((out / "space_app.py").read_bytes())
    (stub / "app.py").write_text(  # stands in for the real app: records what it would launch with
        "import os, pathlib\npathlib.Path('seen.txt').write_text(__name__ + ' ' + os.environ['DIT_DEMO_MODEL'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DIT_DEMO_MODEL"}
    subprocess.run([sys.executable, "space_app.py"], cwd=stub, env=env, check=True, timeout=60)
    assert (stub / "seen.txt").read_text() == "__main__ embedded"
    env["DIT_DEMO_MODEL"] = "tiny-random"  # what a Space variable set in Settings does
    subprocess.run([sys.executable, "space_app.py"], cwd=stub, env=env, check=True, timeout=60)
    assert (stub / "seen.txt").read_text() == "__main__ tiny-random"


def test_space_push_sets_the_variable_and_uploads_one_commit(hub_env, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", ALICE)
    argv = ["--repo-id", "alice/demo", "--model", "alice/tiny-dit-int8", "--out", str(tmp_path / "s"), "--push"]
    assert deploy_space.main(argv) == 0
    repo = hub_env.repos[("space", "alice/demo")]
    assert repo.sdk == "gradio" and repo.variables == {"DIT_DEMO_MODEL": "alice/tiny-dit-int8"}
    files = hub_env.files("alice/demo", repo_type="space")
    assert {"app.py", "space_app.py", "README.md", "requirements.txt", "dit_demo/engine/model/sources.py"} <= set(files)
    assert hub_env.commit_count("alice/demo", "space") == 2


def test_space_refuses_an_unknown_model_source(tmp_path, capsys):
    argv = ["--repo-id", "alice/demo", "--model", "not a model", "--out", str(tmp_path / "s")]
    assert deploy_space.main(argv) == 2
    assert "Unknown model source" in capsys.readouterr().err and not (tmp_path / "s").exists()
