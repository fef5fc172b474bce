"""The per-shape kernel choice: measured tables load, bad ones are refused by name, and each layer runs what the table
says for its own shape and row count (the fused QKV layer included)."""

import json
from pathlib import Path

import pytest
import torch

import dit_demo.engine.fast.kernel_choice as kernel_choice
from dit_demo.engine.fast.compile import assign_rows_choice, resolve_kernel
from dit_demo.engine.fast.layers import Int8Linear
from dit_demo.errors import InvalidRequestError

ROOT = Path(__file__).resolve().parents[3]
TABLE = {
    "device": "NVIDIA H200",
    "choices": [
        {"m": 512, "n": 3456, "k": 1152, "kernel": "triton"},
        {"m": 2048, "n": 3456, "k": 1152, "kernel": "torch"},
        {"m": 512, "n": 1152, "k": 4608, "kernel": "torch"},
    ],
}


def _write(tmp_path, data) -> str:
    path = tmp_path / "kernel_table.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def test_env_table_is_used_for_its_own_device_only(tmp_path, monkeypatch):
    monkeypatch.setenv(kernel_choice.TABLE_ENV, _write(tmp_path, TABLE))
    entries = kernel_choice.table_for("NVIDIA H200")
    assert (512, 3456, 1152, "triton") in entries and len(entries) == 3
    assert kernel_choice.table_for("NVIDIA H100 80GB HBM3") == kernel_choice.MEASURED.get("NVIDIA H100 80GB HBM3", ())


@pytest.mark.parametrize(
    "data,message",
    [
        ({"choices": []}, "needs 'device'"),
        ({"device": "x", "choices": [{"m": 1, "n": 2, "k": 3}]}, "m, n, k and kernel"),
        ({"device": "x", "choices": [{"m": 1, "n": 2, "k": 3, "kernel": "cutlass"}]}, "'cutlass' is not one of"),
    ],
)
def test_bad_tables_are_refused_with_the_file_named(tmp_path, data, message):
    path = _write(tmp_path, data)
    with pytest.raises(InvalidRequestError, match=message) as info:
        kernel_choice.load_table(path)
    assert "kernel_table.json" in str(info.value)


def test_unreadable_table_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(kernel_choice.TABLE_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(InvalidRequestError, match=kernel_choice.TABLE_ENV):
        kernel_choice.table_for("NVIDIA H200")


def test_nearest_measured_row_count_decides_within_2x():
    choice = kernel_choice.rows_choice(kernel_choice._entries(TABLE["choices"], "t"), 3456, 1152)
    assert choice == ((512, True), (2048, False))
    assert kernel_choice.use_triton(choice, 512)
    assert kernel_choice.use_triton(choice, 700)  # nearer 512 than 2048 on a log scale
    assert not kernel_choice.use_triton(choice, 1600)
    assert kernel_choice.use_triton(choice, 1024)  # equidistant: the smaller measured count
    assert kernel_choice.use_triton(choice, 256)  # 2× below the measured 512
    assert not kernel_choice.use_triton(choice, 200)  # further: not measured, cast + cuBLAS
    assert not kernel_choice.use_triton((), 512)  # an unmeasured shape keeps cast + cuBLAS


def test_committed_h200_table_is_the_measured_run():
    """The table `kernel="auto"` uses on an H200 is exactly what bench/h200-w8a16/run2 (the re-measure after the
    faulty tile was removed) measured and chose."""
    run = ROOT / "bench" / "h200-w8a16" / "run2" / "gemm"
    name, entries = kernel_choice.load_table(run / "kernel_table.json")
    assert kernel_choice.MEASURED[name] == entries
    rows = json.loads((run / "gemm.json").read_text(encoding="utf-8"))["rows"]
    for row in rows:  # triton only where its output was right and it beat cast + cuBLAS
        chosen = (row["m"], row["n"], row["k"], "triton") in entries
        assert chosen == (row["ok"] and row["w8a16_us"] < row["cast_mm_us"])


def _layer(out_features: int, in_features: int, activations: bool = False) -> Int8Linear:
    weight = torch.randint(-127, 128, (out_features, in_features), dtype=torch.int8)
    scales = (torch.tensor(0.02), torch.tensor(0.05)) if activations else (None, None)
    return Int8Linear(weight, torch.rand(out_features) * 0.01, None, *scales)


def test_each_layer_gets_its_own_shape_and_static_layers_stay_on_plain_ops():
    model = torch.nn.Sequential(_layer(3456, 1152), _layer(1152, 4608), _layer(4608, 1152), _layer(3456, 1152, True))
    for layer in model:
        layer.kernel = "shape"
    table = kernel_choice._entries(TABLE["choices"], "t")
    assert assign_rows_choice(model, table) == 3
    qkv, fc2, fc1, static = model
    assert qkv.rows_choice == ((512, True), (2048, False)) and fc2.rows_choice == ((512, False),)
    assert fc1.rows_choice == ()
    assert qkv._wants_triton(512) and not qkv._wants_triton(2048)
    assert not fc2._wants_triton(512) and not fc1._wants_triton(512)
    assert not fc1._wants_triton(2) and not qkv._wants_triton(2)  # ≤ 16 rows: the GEMV was not measured
    assert not static._wants_triton(512) and not static._wants_triton(2)  # static int8: `_int_mm` / plain ops


def test_shape_kernel_is_a_gpu_choice_and_auto_stays_plain_on_cpu():
    cpu = torch.device("cpu")
    assert resolve_kernel("auto", cpu) == "torch"
    with pytest.raises(InvalidRequestError, match="CUDA"):
        resolve_kernel("shape", cpu)
