"""`python -m dit_demo generate|quantize`: the library's one path, from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from dit_demo.compare import image_quality
from dit_demo.engine.generate import GenerationResult, build_reference, build_variant, generate
from dit_demo.engine.quantize import KEEP_GROUPS, RECIPES, CalibrationConfig
from dit_demo.engine.request import SamplingRequest
from dit_demo.engine.sources import SCHEDULERS
from dit_demo.errors import DemoError
from dit_demo.reports.render import hstrip
from dit_demo.units import format_db


def human_bytes(value: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} GB"


def summary_lines(result: GenerationResult) -> list[str]:
    return [
        f"recipe          {result.recipe} on {result.device} ({result.dtype}), source {result.source}",
        f"classes         {', '.join(f'{n} ({i})' for n, i in zip(result.class_names, result.class_ids))}",
        f"seeds           {result.seeds}   steps {result.steps}   guidance {result.guidance_scale}   "
        f"{result.scheduler}",
        f"latency         {result.latency_s:.3f} s end to end, {1000 * result.per_step_s:.1f} ms / step, "
        f"decode {result.decode_s:.3f} s" + (f", warm-up {result.warmup_s:.2f} s" if result.warmup_s else ""),
        f"model           load {result.load_s:.2f} s, quantize {result.quantize_s:.2f} s, "
        f"calibrate {result.calibrate_s:.2f} s",
        f"weights         {human_bytes(result.weight_bytes)} (transformer, real storage)",
        f"peak memory     {human_bytes(result.peak_memory_bytes)} ({result.memory_kind})",
    ]


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="embedded (default) | Hub id | folder | dit-xl-2-256-random | dit-xl-2-512-random | tiny-random",
    )
    parser.add_argument("--recipe", default="int8", choices=list(RECIPES))
    parser.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    parser.add_argument("--scheduler", default=None, choices=list(SCHEDULERS))
    parser.add_argument(
        "--keep",
        action="append",
        default=[],
        choices=list(KEEP_GROUPS),
        help="keep a module group in full precision (repeatable)",
    )
    parser.add_argument("--exclude", action="append", default=[], help="extra fnmatch pattern to keep (repeatable)")
    parser.add_argument("--calibration-steps", type=int, default=25)


def cmd_generate(args: argparse.Namespace) -> int:
    reference = build_reference(args.model, device=args.device, scheduler=args.scheduler)
    calibration = CalibrationConfig(steps=args.calibration_steps, guidance_scale=max(args.guidance, 1.0))
    variant = build_variant(reference, args.recipe, keep=args.keep, exclude=args.exclude, calibration=calibration)
    request = SamplingRequest.create(
        args.label or [0], seed=args.seed, steps=args.steps, guidance_scale=args.guidance, warmup=args.warmup
    )
    result = generate(variant, request)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    hstrip(result.images).save(out)
    print("\n".join(summary_lines(result)))
    record = {"result": result.metrics(), "report": variant.report.to_dict()}
    if args.compare:
        base = build_variant(reference, args.compare, keep=args.keep, exclude=args.exclude, calibration=calibration)
        base_result = generate(base, request.replace(warmup=False))
        quality = image_quality(base_result.images, result.images)
        print(f"vs {args.compare:<12} PSNR {format_db(quality['psnr_db'])}   SSIM {quality['ssim']:.4f}")
        record["compare"] = {"recipe": args.compare, **quality, "latency_s": base_result.latency_s}
    print(f"saved           {out}")
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from dit_demo.engine.serialization import save_pipeline

    reference = build_reference(args.model, device=args.device, scheduler=args.scheduler)
    calibration = CalibrationConfig(steps=args.calibration_steps)
    variant = build_variant(reference, args.recipe, keep=args.keep, exclude=args.exclude, calibration=calibration)
    report = variant.report
    folder = save_pipeline(
        variant.pipe,
        args.out,
        overwrite=args.overwrite,
        metadata={"recipe": args.recipe, "source": reference.source, "report": report.to_dict()},
    )
    print(
        f"{args.recipe}: {len(report.quantized_modules)} modules quantized, {len(report.kept_modules)} kept; "
        f"weights {human_bytes(report.weight_bytes_before)} → {human_bytes(report.weight_bytes_after)}; "
        f"quantize {report.quantize_s:.2f} s, calibrate {report.calibrate_s:.2f} s"
    )
    print(f"saved           {folder}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dit_demo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate images with one recipe, print timings/memory/quality")
    add_model_args(gen)
    gen.add_argument("--label", action="append", help="class name or id (repeatable); default: class 0")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--steps", type=int, default=25)
    gen.add_argument("--guidance", type=float, default=4.0)
    gen.add_argument("--warmup", action="store_true", help="run once first and report that time separately")
    gen.add_argument("--compare", choices=list(RECIPES), help="also run this recipe and print PSNR/SSIM against it")
    gen.add_argument("--out", default="out.png")
    gen.add_argument("--json", help="also write the numbers to this JSON file")
    gen.set_defaults(func=cmd_generate)
    quant = sub.add_parser("quantize", help="quantize and save a complete pipeline folder (quanto format)")
    add_model_args(quant)
    quant.add_argument("--out", required=True)
    quant.add_argument("--overwrite", action="store_true")
    quant.set_defaults(func=cmd_quantize)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DemoError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
