"""Hostile `--model` values and damaged or reloaded folders, through the command people run (`python -m dit_demo`
in a subprocess): a short error naming the option or the file, exit 2, never a traceback or a 100 kB echo."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dit_demo.engine.model.resolver import MAX_SOURCE_CHARS


def dit_demo(*args: str, umask: int = 0o022) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dit_demo", *args], capture_output=True, text=True, timeout=300, umask=umask
    )


@pytest.mark.parametrize("length", [300, 100_000], ids=["name-too-long-for-the-os", "over-the-limit"])
def test_a_huge_model_string_is_a_short_named_error(tmp_path: Path, length: int) -> None:
    proc = dit_demo("generate", "--model", "a" * length, "--steps", "1", "--out", str(tmp_path / "x.png"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --model: ") and "Traceback" not in proc.stderr
    assert len(proc.stderr) < 400  # a short prefix at most, never the whole string
    if length > MAX_SOURCE_CHARS:
        assert f"too long ({length:,} characters; at most {MAX_SOURCE_CHARS:,})" in proc.stderr
    else:
        assert "not a usable path" in proc.stderr and "too long" in proc.stderr
    assert not (tmp_path / "x.png").exists()


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """int8-a8 of the tiny model saved by `dit-demo quantize` under umask 022 (its calibration took real time)."""
    out = tmp_path_factory.mktemp("cli") / "tiny-a8"
    proc = dit_demo("quantize", "--model", "tiny-random", "--recipe", "int8-a8", "--calibration-steps", "2",
                    "--device", "cpu", "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out


def test_saved_folders_get_normal_modes(saved: Path) -> None:
    modes = {p.relative_to(saved.parent): p.stat().st_mode & 0o777 for p in [saved, *saved.rglob("*")]}
    assert {m for p, m in modes.items() if (saved.parent / p).is_dir()} == {0o755}, modes
    assert {m for p, m in modes.items() if (saved.parent / p).is_file()} == {0o644}, modes


def test_modes_follow_the_umask(tmp_path: Path) -> None:
    out = tmp_path / "private"
    assert dit_demo("quantize", "--model", "tiny-random", "--out", str(out), umask=0o077).returncode == 0
    assert {p.stat().st_mode & 0o777 for p in [out, *out.rglob("*")]} == {0o700, 0o600}


def test_a_reloaded_folder_reports_no_build_time_of_its_own(saved: Path, tmp_path: Path) -> None:
    report = json.loads((saved / "dit_demo.json").read_text())["report"]
    assert report["calibrate_s"] > 0  # the folder remembers how long it once took to build ...
    record = tmp_path / "r.json"
    proc = dit_demo("generate", "--model", str(saved), "--recipe", "int8-a8", "--steps", "1", "--device", "cpu",
                    "--out", str(tmp_path / "r.png"), "--json", str(record))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "loaded pre-quantized" in proc.stdout  # ... which is not this run's
    assert not re.search(r"(quantize|calibrate) \d", proc.stdout)
    result = json.loads(record.read_text())["result"]
    assert result["prequantized"] and result["quantize_s"] == 0 and result["calibrate_s"] == 0


def test_a_config_that_is_not_an_object_is_named(saved: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(saved, broken)
    (broken / "vae" / "config.json").write_text("[1, 2, 3]")
    proc = dit_demo("generate", "--model", str(broken), "--recipe", "int8-a8", "--out", str(tmp_path / "b.png"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert str(broken / "vae" / "config.json") in proc.stderr and "not a JSON object" in proc.stderr
    assert "huggingface.co" not in proc.stderr and "connect" not in proc.stderr
