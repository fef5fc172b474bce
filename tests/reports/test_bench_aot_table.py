"""The AOT benchmark's table: records of the phases become one row per (resolution, recipe), targets checked."""

import json

from dit_demo.reports import bench_aot_table

MODEL = "dit-xl-2-256-random"


def _steady(recipe, kind, median):
    return {"phase": "steady", "recipe": recipe, "model": MODEL, "batch": 1, "kind": kind, "steady_s": median,
            "steady_min_s": median * 0.9, "steady_max_s": median * 1.1, "forward_ms": 3.0,
            "ratio_to_bf16_compile": median / 0.06, "psnr_vs_eager_db": 45.0, "path": "step-graph"}  # fmt: skip


def _records():
    return [
        {
            "phase": "build",
            "recipe": "fp8-a8",
            "model": MODEL,
            "batch": 1,
            "export_s": 15.0,
            "compile_s": 116.0,
            "package_bytes": 9 * 2**20,
            "execstack_kept": False,
        },  # fmt: skip
        {
            "phase": "build",
            "recipe": "bf16",
            "model": MODEL,
            "batch": 1,
            "export_s": 5.5,
            "compile_s": 95.0,
            "package_bytes": 6 * 2**20,
            "execstack_kept": True,
        },  # fmt: skip: a diagnosis-only package
        {
            "phase": "aot",
            "recipe": "fp8-a8",
            "model": MODEL,
            "batch": 1,
            "first_request_s": 0.3,
            "steady_s": 0.07,
            "load_s": 1.5,
            "kernel_warm_s": 0.2,
            "path": "step-graph",
        },  # fmt: skip
        {
            "phase": "aot",
            "recipe": "bf16",
            "model": MODEL,
            "batch": 1,
            "first_request_s": 0.1,
            "steady_s": 0.06,
            "load_s": 1.0,
            "kernel_warm_s": 0.2,
            "path": "step-graph",
        },  # fmt: skip
        _steady("bf16", "compile", 0.06),
        _steady("bf16", "aot", 0.063),
        _steady("fp8-a8", "compile", 0.07),
        _steady("fp8-a8", "aot", 0.08),
        {"phase": "steady", "failed_rc": 124},
    ]


def test_rows_join_the_phases_and_check_both_targets():
    rows = bench_aot_table.rows(_records())
    assert [row["recipe"] for row in rows] == ["bf16", "fp8-a8"]
    bf16, fp8 = rows
    assert "export_s" not in bf16  # the executable-stack diagnosis package is not the measured build
    assert fp8["package_mib"] == 9 and fp8["aoti_compile_s"] == 116.0
    assert abs(bf16["aot_over_compile"] - 1.05) < 1e-9 and bf16["steady_target_met"] is True
    assert fp8["steady_target_met"] is False  # 0.08 / 0.07 = 1.14 > 1.10
    assert bf16["first_target_met"] is True  # 0.1 / 0.063 = 1.6
    assert fp8["first_target_met"] is False  # 0.3 / 0.08 = 3.75


def test_main_writes_results_json_and_the_table(tmp_path):
    records = tmp_path / "records.jsonl"
    records.write_text("\n".join(json.dumps(r) for r in _records()) + "\n", encoding="utf-8")
    bench_aot_table.main([str(tmp_path / "out"), str(records)])
    results = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert len(results["records"]) == len(_records()) and len(results["rows"]) == 2
    table = (tmp_path / "out" / "results.md").read_text(encoding="utf-8")
    assert "| 256² | fp8-a8 | 15.0 | 116.0 | 9.0 |" in table
    assert "0.300 (3.8×)" in table
