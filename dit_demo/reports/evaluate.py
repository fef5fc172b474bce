"""Quality table of the embedded digits model per quantization recipe and guidance scale.

Why: "int8 is as good as full precision" has to be a measured statement. For every recipe and guidance this
generates `--samples` digits (labels i % 10, seeds 0..N-1) through the project's one generation path
(`dit_demo.engine.generate`), then reports class accuracy and classifier-feature FID against the held-out real digits
(`dit_demo.embedded.quality`) and PSNR/SSIM against the full-precision images of the same seeds
(`dit_demo.engine.metrics`). Usage::

    python -m dit_demo.reports.evaluate --samples 500 --guidance 1,2,4 \
        --recipes bf16,int8,int8-a8,fp8,int4 --out DIR

Writes DIR/quality.json and DIR/quality.md. The targets (full precision >= 97 % at guidance 4 and >= 90 % at 2;
int8 within 1 point and FID within 5 %; int8-a8 within 3 points) are checked and printed, never relaxed.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from dit_demo.embedded import quality
from dit_demo.engine.fast import compile_variant
from dit_demo.engine.generate import Variant, build_reference, build_variant, generate
from dit_demo.engine.metrics import psnr, ssim
from dit_demo.engine.quantize import module_weight_bytes
from dit_demo.engine.request import SamplingRequest

REFERENCE = "bf16"  # the core library's name for the full-precision reference (float32 on CPU)


def parse_recipe(spec: str) -> tuple[str, list[str], bool]:
    """'int8-a8:keep=adaln+embedders,fast' -> ('int8-a8', ['adaln', 'embedders'], True): a recipe with module groups
    kept in full precision (groups of `dit_demo.engine.quantize.KEEP_GROUPS`) and/or run through the GPU fast path's layers
    (`dit_demo.engine.fast`: int8 linears as plain ops + int8 label tables, uncompiled here), so exclusion experiments and
    the fast path's numerics land in the same table."""
    name, _, options = spec.partition(":")
    keep: list[str] = []
    fast = False
    for option in filter(None, options.split(",")):
        key, _, value = option.partition("=")
        if key == "fast" and not value:
            fast = True
        elif key == "keep":
            keep += [g for g in value.split("+") if g]
        else:
            raise ValueError(f"unknown recipe option {key!r} in {spec!r}; use keep=GROUP+GROUP and/or fast")
    return name, keep, fast


def generate_all(variant: Variant, n: int, guidance: float, steps: int, batch: int, seed0: int) -> dict:
    """n images, labels i % 10, seeds seed0 + i, in batches; returns images, labels and seconds per image."""
    labels = [i % 10 for i in range(n)]
    images, elapsed = [], 0.0
    for start in tqdm(range(0, n, batch), desc=f"{variant.recipe} g={guidance:g}", leave=False, mininterval=5):
        chunk = labels[start : start + batch]
        seeds = [seed0 + i for i in range(start, start + len(chunk))]
        request = SamplingRequest(tuple(chunk), tuple(seeds), steps, guidance, max_batch=batch)
        result = generate(variant, request)
        images.extend(result.images)
        elapsed += result.latency_s
    return {"images": images, "labels": labels, "s_per_image": elapsed / max(n, 1)}


def real_digit_baseline(n: int, seed: int) -> dict:
    """Accuracy and FID of n real *train-split* digits against the held-out split: the floor FID can reach."""
    from dit_demo.embedded.train import load_digit_splits

    splits = load_digit_splits()
    idx = torch.randperm(len(splits.train_y), generator=torch.Generator().manual_seed(seed))[:n]
    images, labels = splits.train_x[idx], splits.train_y[idx].numpy()
    return {
        "n": int(len(idx)),
        "accuracy": quality.class_accuracy(images, labels),
        "fid": quality.fid(images),
        "heldout_accuracy": quality.class_accuracy(*quality.heldout_digits()),
    }


def check_targets(rows: list[dict]) -> list[dict]:
    """The stated targets, each with its measured value, margin and pass/miss."""

    def find(recipe: str, guidance: float) -> dict | None:
        return next((r for r in rows if r["recipe"] == recipe and r["guidance"] == guidance and "error" not in r), None)

    checks = []

    def add(name: str, value: float | None, target: float, unit: str, higher_is_better: bool = True) -> None:
        """value, target and margin in `unit` (%, points, % of FID)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            checks.append(
                {"target": name, "value": None, "threshold": target, "unit": unit, "passed": False, "margin": None}
            )
            return
        margin = value - target if higher_is_better else target - value
        checks.append(
            {"target": name, "value": value, "threshold": target, "unit": unit, "passed": margin >= 0, "margin": margin}
        )

    ref4, ref2 = find(REFERENCE, 4.0), find(REFERENCE, 2.0)
    add("full precision accuracy @ g=4 >= 97 %", ref4 and ref4["accuracy"] * 100, 97.0, "%")
    add("full precision accuracy @ g=2 >= 90 %", ref2 and ref2["accuracy"] * 100, 90.0, "%")
    for guidance in sorted({r["guidance"] for r in rows}):
        ref = find(REFERENCE, guidance)
        if ref is None:
            continue
        for recipe, points in (("int8", 1.0), ("int8-a8", 3.0)):
            row = find(recipe, guidance)
            if row is None:
                continue
            drop = (ref["accuracy"] - row["accuracy"]) * 100
            add(f"{recipe} accuracy drop @ g={guidance:g} <= {points:g} point(s)", drop, points, "points", False)
        row = find("int8", guidance)
        if row is not None:
            rel = (row["fid"] - ref["fid"]) / ref["fid"] * 100 if ref["fid"] > 0 else float("nan")
            add(f"int8 FID increase @ g={guidance:g} <= 5 %", rel, 5.0, "%", False)
    return checks


def fmt(value: float | None, spec: str) -> str:
    """Table cell: '-' for missing, 'identical' for infinite PSNR."""
    if value is None:
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "identical"
    return format(value, spec)


def to_markdown(report: dict) -> str:
    """The quality table + targets, as Markdown for the README."""
    meta = report["meta"]
    lines = [
        f"Embedded digits DiT, {meta['samples']} samples per row (labels i % 10, seeds {meta['seed']}..), "
        f"{meta['steps']} DPM-Solver++ steps; {meta['machine']}; {meta['date']}.",
        "Accuracy and FID by the shipped CNN judge (FID in its 64-d feature space vs the 360 held-out real digits);"
        " PSNR/SSIM vs full precision on the same seeds and guidance.",
        "",
        "| recipe | guidance | accuracy | FID | PSNR vs FP (dB) | SSIM vs FP | transformer MB | s / image |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        name = "full precision (fp32)" if r["recipe"] == REFERENCE else r["recipe"]
        if "error" in r:
            lines.append(f"| {name} | {r['guidance']:g} | did not run: {r['error']} | | | | | |")
            continue
        lines.append(
            f"| {name} | {r['guidance']:g} | {r['accuracy'] * 100:.1f} % | {r['fid']:.2f} | "
            f"{fmt(r['psnr_vs_fp'], '.1f')} | {fmt(r['ssim_vs_fp'], '.3f')} | {r['transformer_mb']:.2f} | "
            f"{r['s_per_image']:.3f} |"
        )
    base = report.get("real_baseline")
    if base:
        lines += [
            "",
            f"Real digits for scale: {base['n']} train-split digits score {base['accuracy'] * 100:.1f} % and FID "
            f"{base['fid']:.2f} against the held-out split; the judge is {base['heldout_accuracy'] * 100:.1f} % "
            "accurate on the held-out real digits.",
        ]
    lines += ["", "| target | measured | result |", "|---|---|---|"]
    for c in report["targets"]:
        signed = "drop" in c["target"] or "increase" in c["target"]  # changes get a sign, levels do not
        unit = f" {c['unit']}"
        value = "–" if c["value"] is None else f"{c['value']:{'+' if signed else ''}.2f}{unit}"
        verdict = (
            "pass" if c["passed"] else ("missed" if c["margin"] is None else f"MISSED by {-c['margin']:.2f}{unit}")
        )
        lines.append(f"| {c['target']} | {value} | {verdict} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    """CLI entry point; returns the report it writes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--guidance", default="1,2,4", help="comma-separated guidance scales")
    parser.add_argument(
        "--recipes",
        default="bf16,int8,int8-a8,fp8,int4",
        help="comma-separated; a recipe may keep module groups in full precision: int8-a8:keep=adaln+embedders",
    )
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", default="embedded")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-baseline", action="store_true", help="skip the real-digit baseline (needs sklearn)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    guidances = [float(g) for g in args.guidance.split(",") if g.strip()]
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    if REFERENCE not in recipes:
        recipes.insert(0, REFERENCE)  # PSNR/SSIM need the full-precision images
    recipes.sort(key=lambda r: r != REFERENCE)
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    reference = build_reference(args.source, device="cpu")
    ref_images: dict[float, list] = {}
    rows: list[dict] = []
    for recipe in recipes:
        try:
            t0 = time.perf_counter()
            name, keep, fast = parse_recipe(recipe)
            variant = reference if recipe == REFERENCE else build_variant(reference, name, keep=keep)
            if fast:
                variant = compile_variant(variant, "none", kernel="torch", inplace=False)
            build_s = time.perf_counter() - t0
        except Exception as exc:  # report a recipe that cannot run here instead of aborting the table
            traceback.print_exc()
            error = f"{type(exc).__name__}: {exc}"[:200]
            rows += [{"recipe": recipe, "guidance": g, "error": error} for g in guidances]
            continue
        for guidance in guidances:
            out = generate_all(variant, args.samples, guidance, args.steps, args.batch, args.seed)
            labels = np.asarray(out["labels"])
            row = {
                "recipe": recipe,
                "guidance": guidance,
                "accuracy": quality.class_accuracy(out["images"], labels),
                "fid": quality.fid(out["images"]),
                "transformer_mb": module_weight_bytes(variant.pipe.transformer) / 1e6,
                "s_per_image": out["s_per_image"],
                "build_s": build_s,
            }
            if recipe == REFERENCE:
                ref_images[guidance] = out["images"]
                row["psnr_vs_fp"], row["ssim_vs_fp"] = math.inf, 1.0
            else:
                row["psnr_vs_fp"] = psnr(out["images"], ref_images[guidance])
                row["ssim_vs_fp"] = ssim(out["images"], ref_images[guidance])
            rows.append(row)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
        if variant is not reference:
            del variant

    report = {
        "meta": {
            "samples": args.samples,
            "steps": args.steps,
            "seed": args.seed,
            "source": args.source,
            "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads, no GPU, "
            f"torch {torch.__version__}",
            "date": time.strftime("%Y-%m-%d"),
            "wall_s": None,
        },
        "rows": rows,
        "real_baseline": None if args.no_baseline else real_digit_baseline(args.samples, args.seed),
    }
    report["targets"] = check_targets(rows)
    report["meta"]["wall_s"] = round(time.perf_counter() - started, 1)

    def jsonable(v: object) -> object:
        return None if isinstance(v, float) and math.isinf(v) else v

    clean = json.loads(json.dumps(report, default=str), parse_constant=lambda _: None)
    clean["rows"] = [{k: jsonable(v) for k, v in r.items()} for r in rows]
    (args.out / "quality.json").write_text(json.dumps(clean, indent=2) + "\n")
    markdown = to_markdown(report)
    (args.out / "quality.md").write_text(markdown)
    print(markdown)
    return report


if __name__ == "__main__":
    main()
