"""The README tables of a bench/h200-w8a16 run, from its gemm.json and e2e/results.json (nothing typed by hand).

    python bench/h200-w8a16/summarize.py bench/h200-w8a16/run2

Prints four markdown tables: GEMM µs per shape (a W8A16 time whose output was wrong is shown as such, not as a
time), the four token GEMMs of one block summed per row count (bf16 / cast path / per-shape choice, TFLOP/s),
end-to-end latency with ratios to bf16 compiled and their interleaved ranges, and device µs per captured step by
kernel category (the top 15 kernels, categorized by e2e.py's rules, plus the rest). A GEMM-only run
(`E2E=0 bash bench/h200-w8a16/run.sh`, no e2e/ folder) prints the GEMM table and says the end-to-end part was not run.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAMES = {(3456, 1152): "qkv (fused)", (1152, 1152): "attn out", (4608, 1152): "fc1", (1152, 4608): "fc2"}


def _e2e_module():
    spec = importlib.util.spec_from_file_location("w8a16_e2e", HERE / "e2e.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gemm_table(gemm: dict) -> str:
    lines = [
        "| layer | M | N | K | bf16 cuBLAS µs | int8 cast + cuBLAS µs | W8A16 Triton µs | W8A16 ÷ cast+mm "
        "| W8A16 ÷ bf16 | chosen |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in gemm["rows"]:
        if r["ok"]:
            w8 = f"{r['w8a16_us']:.1f}"
            ratios = f"{r['w8a16_us'] / r['cast_mm_us']:.2f} | {r['w8a16_us'] / r['bf16_us']:.2f}"
        else:
            w8, ratios = f"wrong output ({r['w8a16_max_err_rel']:.0%} max error)", "— | —"
        lines.append(
            f"| {NAMES.get((r['n'], r['k']), '')} | {r['m']} | {r['n']} | {r['k']} | {r['bf16_us']:.1f} | "
            f"{r['cast_mm_us']:.1f} | {w8} | {ratios} | {'**W8A16**' if r['faster'] == 'triton' else 'cast+mm'} |"
        )
    return "\n".join(lines)


def block_table(gemm: dict) -> str:
    """Per row count, the four token GEMMs of one DiT block summed (a sum of the micro-benchmark's medians, not an
    end-to-end time): bf16, the cast path, the per-shape choice, and W8A16 throughput vs cuBLAS's (TFLOP/s, correct
    W8A16 outputs only) — the main-loop speed that decides whether int8 weight-only can reach bf16."""
    lines = [
        "| M | bf16 µs | int8 cast + cuBLAS µs | int8 per-shape choice µs | choice ÷ bf16 | W8A16 shapes "
        "| bf16 cuBLAS TFLOP/s | W8A16 TFLOP/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in sorted({r["m"] for r in gemm["rows"]}):
        rows = [r for r in gemm["rows"] if r["m"] == m and "bf16_us" in r]
        bf16, cast = sum(r["bf16_us"] for r in rows), sum(r["cast_mm_us"] for r in rows)
        chosen = sum(r["w8a16_us"] if r["faster"] == "triton" else r["cast_mm_us"] for r in rows)
        flop = [2 * r["m"] * r["n"] * r["k"] for r in rows]
        right = [(f, r) for f, r in zip(flop, rows, strict=True) if r["ok"]]
        w8_tflops = f"{sum(f for f, _ in right) / sum(r['w8a16_us'] for _, r in right) / 1e6:.0f}" if right else "—"
        picked = ", ".join(NAMES.get((r["n"], r["k"]), "?") for r in rows if r["faster"] == "triton") or "none"
        lines.append(
            f"| {m} | {bf16:.1f} | {cast:.1f} | {chosen:.1f} | {chosen / bf16:.2f} | {picked} | "
            f"{sum(flop) / bf16 / 1e6:.0f} | {w8_tflops} |"
        )
    return "\n".join(lines)


def _setting_name(setting: dict) -> str:
    size = setting["model"].split("-")[3]
    return f"{size}² b{setting['batch']}"


def e2e_table(record: dict) -> str:
    lines = [
        "| setting | variant | end-to-end s (median, min–max) | × bf16 compiled (range) | forward ms | ms / step "
        "| PSNR vs bf16 eager dB | peak × bf16 | warm-up s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for setting in record["settings"]:
        base_peak = setting["cells"].get("bf16", {}).get("peak_memory_bytes")
        for name, cell in setting["cells"].items():
            if "latency" not in cell:
                why = cell.get("skipped") or cell.get("error")
                lines.append(f"| {_setting_name(setting)} | {name} | {why} | | | | | | |")
                continue
            lat, vs = cell["latency"], cell["vs_bf16_compiled"]
            peak = cell.get("peak_memory_bytes")
            peak_ratio = f"{peak / base_peak:.2f}×" if peak and base_peak else "—"
            lines.append(
                f"| {_setting_name(setting)} | {name} | {lat['median_s']:.4f} ({lat['min_s']:.4f}–{lat['max_s']:.4f}) "
                f"| {vs['ratio']:.2f}× ({vs['low']:.2f}–{vs['high']:.2f}, {vs['verdict']}) | "
                f"{cell['forward_s'] * 1e3:.2f} | {cell['per_step_s'] * 1e3:.2f} | {cell.get('psnr_db') or '—'} | "
                f"{peak_ratio} | {cell['warmup_s']} |"
            )
    return "\n".join(lines)


def category_table(record: dict, category) -> str:
    rows = []
    labels: list[str] = []
    for setting in record["settings"]:
        for name, cell in setting["cells"].items():
            profile = cell.get("profile")
            if not profile or "top" not in profile:
                continue
            totals: dict[str, float] = {}
            for kernel in profile["top"]:
                label = category(kernel["name"])
                totals[label] = totals.get(label, 0.0) + kernel["us_per_step"]
            totals["kernels outside the top 15"] = profile["total_us_per_step"] - sum(totals.values())
            labels += [label for label in totals if label not in labels]
            rows.append((f"{_setting_name(setting)} {name}", profile["total_us_per_step"], totals))
    labels.sort(key=lambda label: label == "kernels outside the top 15")
    lines = ["| variant | all kernels µs / step | " + " | ".join(labels) + " |", "|---" * (len(labels) + 2) + "|"]
    for name, total, totals in rows:
        cells = " | ".join(f"{totals[label]:.0f}" if label in totals else "—" for label in labels)
        lines.append(f"| {name} | {total:.0f} | {cells} |")
    return "\n".join(lines)


def main(run: str) -> int:
    folder = Path(run)
    if (folder / "results.json").is_file():  # a table.sh run: end to end only, no GEMM micro-benchmark
        record = json.loads((folder / "results.json").read_text(encoding="utf-8"))
        print(e2e_table(record), "\n")
        print(category_table(record, _e2e_module().category))
        return 0
    gemm_json = folder / "gemm" / "gemm.json"
    if not gemm_json.is_file():
        print(f"{gemm_json}: no GEMM results (is {folder} a bench/h200-w8a16 run folder?)", file=sys.stderr)
        return 2
    gemm = json.loads(gemm_json.read_text(encoding="utf-8"))
    print(f"GEMM ({gemm['device']}, torch {gemm['torch']}, triton {gemm['triton']})\n")
    print(gemm_table(gemm), "\n")
    print(block_table(gemm), "\n")
    results = folder / "e2e" / "results.json"
    if not results.is_file():
        print(f"End to end: not run in this call ({results.relative_to(folder)} absent; run.sh with E2E=0).")
        return 0
    record = json.loads(results.read_text(encoding="utf-8"))
    print(e2e_table(record), "\n")
    print(category_table(record, _e2e_module().category))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else str(HERE / "run2")))
