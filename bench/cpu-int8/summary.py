"""The compact rows bench/cpu-int8/README.md (and README.md) quote, printed from committed cpu-bench records.

    python bench/cpu-int8/summary.py bench/cpu-int8/xl2/results.json [--timing forward|sampling] [--recipe NAME]

One row per cell: threads, batch, fp32's median (range), the recipe's ratio to fp32 (median, most to least
favourable pairing) and verdict, its PSNR vs fp32, and the 1-minute load average before -> after.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(record: dict, timing: str, recipe: str) -> list[str]:
    out = []
    for cell in record["cells"]:
        ref, row = cell["recipes"]["bf16"], cell["recipes"][recipe]
        if timing not in ref:
            continue
        fp32, verdict = ref[timing], row[f"{timing}_verdict"]
        psnr = row.get("psnr_db" if timing == "sampling" else "forward_psnr_db")
        out.append(
            f"| {cell['threads']} | {cell['batch']} "
            f"| {fp32['median_s']:.3f} s ({fp32['min_s']:.3f}–{fp32['max_s']:.3f}) "
            f"| {row[timing]['median_s']:.3f} s ({row[timing]['min_s']:.3f}–{row[timing]['max_s']:.3f}) "
            f"| {verdict['ratio']:.2f}× ({verdict['ratio_low']:.2f}–{verdict['ratio_high']:.2f}) "
            f"| {verdict['direction']} | {psnr} | {cell['load_before']} → {cell['load_after']} |"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("record", type=Path)
    parser.add_argument("--timing", default="forward", choices=("forward", "sampling"))
    parser.add_argument("--recipe", default="int8-dynamic")
    args = parser.parse_args()
    record = json.loads(args.record.read_text(encoding="utf-8"))
    print(f"| threads | batch | fp32 | {args.recipe} | × fp32 | verdict | PSNR dB | load |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows(record, args.timing, args.recipe)))


if __name__ == "__main__":
    main()
