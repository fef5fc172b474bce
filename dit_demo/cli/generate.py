"""`dit-demo generate`: images with one recipe, with timings, memory and (with --compare) quality against another."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dit_demo.cli.common import add_model_args, guarded, resolve_model
from dit_demo.engine.quant.recipes import RECIPES

if TYPE_CHECKING:
    from dit_demo.engine.generate import GenerationResult

DESCRIPTION = "generate images with one recipe, print timings/memory/quality"


def summary_lines(result: GenerationResult) -> list[str]:
    from dit_demo.units import format_bytes

    return [
        f"recipe          {result.recipe} on {result.device} ({result.dtype}), source {result.source}",
        f"classes         {', '.join(f'{n} ({i})' for n, i in zip(result.class_names, result.class_ids))}",
        f"seeds           {result.seeds}   steps {result.steps}   guidance {result.guidance_scale}   "
        f"{result.scheduler}",
        f"latency         {result.latency_s:.3f} s end to end, {1000 * result.per_step_s:.1f} ms / step, "
        f"decode {result.decode_s:.3f} s" + (f", warm-up {result.warmup_s:.2f} s" if result.warmup_s else ""),
        f"model           load {result.load_s:.2f} s, "
        + (
            "loaded pre-quantized (nothing quantized or calibrated in this run)"
            if result.prequantized
            else f"quantize {result.quantize_s:.2f} s, calibrate {result.calibrate_s:.2f} s"
        ),
        f"weights         {format_bytes(result.weight_bytes)} (transformer, real storage)",
        f"peak memory     {format_bytes(result.peak_memory_bytes)} ({result.memory_kind})",
    ]


def generate_images(
    *,
    model: str | None,
    recipe: str,
    labels: Sequence[str | int],
    out: Path,
    seed: int = 0,
    steps: int = 25,
    guidance: float = 4.0,
    warmup: bool = False,
    scheduler: str | None = None,
    device: str | None = None,
    keep: Sequence[str] = (),
    exclude: Sequence[str] = (),
    calibration_steps: int = 25,
    compare_with: str | None = None,
    rounds: int = 3,
) -> dict:
    """Build the variant, generate, save the strip at `out`, print the summary; returns the JSON record."""
    from dataclasses import asdict

    from dit_demo.compare import image_quality, repeat_latencies
    from dit_demo.engine.generate import build_reference, build_variant, generate
    from dit_demo.engine.quant.quantize import CalibrationConfig
    from dit_demo.engine.request import SamplingRequest
    from dit_demo.engine.timing import speed_verdict
    from dit_demo.reports.render import hstrip
    from dit_demo.units import format_db

    reference = build_reference(resolve_model(model), device=device, scheduler=scheduler)
    calibration = CalibrationConfig(steps=calibration_steps, guidance_scale=max(guidance, 1.0))
    variant = build_variant(reference, recipe, keep=keep, exclude=exclude, calibration=calibration)
    request = SamplingRequest.create(
        list(labels) or [0], seed=seed, steps=steps, guidance_scale=guidance, warmup=warmup
    )
    result = generate(variant, request)
    out.parent.mkdir(parents=True, exist_ok=True)
    hstrip(result.images).save(out)
    print("\n".join(summary_lines(result)))
    record = {"result": result.metrics(), "report": variant.report.to_dict()}
    if compare_with:
        base = build_variant(reference, compare_with, keep=keep, exclude=exclude, calibration=calibration)
        base_result = generate(base, request.replace(warmup=False))
        quality = image_quality(base_result.images, result.images)
        print(f"vs {compare_with:<12} PSNR {format_db(quality['psnr_db'])}   SSIM {quality['ssim']:.4f}")
        record["compare"] = {"recipe": compare_with, **quality, "latency_s": base_result.latency_s}
        if compare_with != recipe and rounds > 1:  # one timing on a shared machine is no verdict: interleave more
            spreads = repeat_latencies(
                {compare_with: base, recipe: variant},
                request,
                [compare_with, recipe],
                {compare_with: base_result, recipe: result},
                rounds=rounds,
            )
            speed = speed_verdict(spreads[compare_with], spreads[recipe])
            print(f"speed           {recipe} is {speed.phrase(compare_with)}")
            record["compare"].update(
                latency_spread=spreads[compare_with].to_dict(),
                candidate_latency_spread=spreads[recipe].to_dict(),
                speed_verdict=asdict(speed),
            )
    print(f"saved           {out}")
    return record


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dit-demo generate", description=DESCRIPTION)
    add_model_args(parser)
    parser.add_argument("--label", action="append", help="class name or id (repeatable); default: class 0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=4.0)
    parser.add_argument("--warmup", action="store_true", help="run once first and report that time separately")
    parser.add_argument("--compare", choices=list(RECIPES), help="also run this recipe and print PSNR/SSIM against it")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="with --compare: timed interleaved runs per recipe behind the speed line",
    )
    parser.add_argument("--out", default="out.png")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    return parser


def run(args: argparse.Namespace) -> int:
    record = generate_images(
        model=args.model,
        recipe=args.recipe,
        labels=args.label or [],
        out=Path(args.out),
        seed=args.seed,
        steps=args.steps,
        guidance=args.guidance,
        warmup=args.warmup,
        scheduler=args.scheduler,
        device=args.device,
        keep=args.keep,
        exclude=args.exclude,
        calibration_steps=args.calibration_steps,
        compare_with=args.compare,
        rounds=args.rounds,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return guarded(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
