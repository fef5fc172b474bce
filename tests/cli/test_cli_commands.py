import json
import subprocess
import sys

import pytest
from PIL import Image

from dit_demo.cli.main import main


def test_generate_writes_an_image_and_compares(tmp_path, capsys):
    out, record = tmp_path / "out.png", tmp_path / "out.json"
    code = main(
        [
            "generate",
            "--model",
            "tiny-random",
            "--recipe",
            "int8",
            "--label",
            "golden retriever",
            "--seed",
            "0",
            "--steps",
            "4",
            "--out",
            str(out),
            "--compare",
            "bf16",
            "--json",
            str(record),
        ]
    )
    assert code == 0
    assert Image.open(out).size == (16, 16)
    printed = capsys.readouterr().out
    assert "PSNR" in printed and "ms / step" in printed and "peak memory" in printed
    data = json.loads(record.read_text())
    assert data["compare"]["psnr_db"] > 40 and data["result"]["recipe"] == "int8"
    # the speed line rests on 3 interleaved runs of each, worded from the ranges (engine.timing)
    from dit_demo.engine.timing import Spread, speed_verdict

    compared = data["compare"]
    base, candidate = (Spread.from_dict(compared[k]) for k in ("latency_spread", "candidate_latency_spread"))
    assert base.runs == candidate.runs == compared["speed_verdict"]["runs"] == 3
    assert base.samples[0] == pytest.approx(compared["latency_s"], abs=1e-6)
    assert compared["speed_verdict"]["direction"] == speed_verdict(base, candidate).direction
    assert "3 interleaved runs" in printed and f"int8 is {speed_verdict(base, candidate).phrase('bf16')}" in printed


def test_bad_input_exits_2_with_a_message(tmp_path, capsys):
    assert (
        main(["generate", "--model", "tiny-random", "--label", "golden retreiver", "--out", str(tmp_path / "x.png")])
        == 2
    )
    assert "Did you mean" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_quantize_saves_a_loadable_folder(tmp_path):
    target = tmp_path / "int8"
    assert main(["quantize", "--model", "tiny-random", "--recipe", "int8", "--out", str(target)]) == 0
    assert (target / "transformer" / "quanto_qmap.json").is_file()
    assert (
        main(
            [
                "generate",
                "--model",
                str(target),
                "--recipe",
                "int8",
                "--steps",
                "2",
                "--out",
                str(tmp_path / "reloaded.png"),
            ]
        )
        == 0
    )
    assert main(["quantize", "--model", "tiny-random", "--recipe", "int8", "--out", str(target)]) == 2  # exists


def test_module_entry_point(tmp_path):
    out = tmp_path / "m.png"
    proc = subprocess.run(
        [sys.executable, "-m", "dit_demo", "generate", "--model", "tiny-random", "--steps", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()
