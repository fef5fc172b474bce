"""`dit-demo quantize`: quantize a model and save a complete pipeline folder (quanto format)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from dit_demo.cli.common import add_model_args, guarded, resolve_model

DESCRIPTION = "quantize and save a complete pipeline folder (quanto format)"


def quantize_to_folder(
    *,
    model: str | None,
    recipe: str,
    out: Path,
    overwrite: bool = False,
    scheduler: str | None = None,
    device: str | None = None,
    keep: Sequence[str] = (),
    exclude: Sequence[str] = (),
    calibration_steps: int = 25,
) -> Path:
    """Build the variant and save it with its report as metadata; prints what was done. Returns the folder."""
    from dit_demo.engine.generate import build_reference, build_variant
    from dit_demo.engine.model.serialization import save_pipeline
    from dit_demo.engine.quant.quantize import CalibrationConfig
    from dit_demo.units import format_bytes

    reference = build_reference(resolve_model(model), device=device, scheduler=scheduler)
    calibration = CalibrationConfig(steps=calibration_steps)
    variant = build_variant(reference, recipe, keep=keep, exclude=exclude, calibration=calibration)
    report = variant.report
    folder = save_pipeline(
        variant.pipe,
        out,
        overwrite=overwrite,
        metadata={"recipe": recipe, "source": reference.source, "report": report.to_dict()},
    )
    print(
        f"{recipe}: {len(report.quantized_modules)} modules quantized, {len(report.kept_modules)} kept; "
        f"weights {format_bytes(report.weight_bytes_before)} → {format_bytes(report.weight_bytes_after)}; "
        f"quantize {report.quantize_s:.2f} s, calibrate {report.calibrate_s:.2f} s"
    )
    print(f"saved           {folder}")
    return Path(folder)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dit-demo quantize", description=DESCRIPTION)
    add_model_args(parser)
    parser.add_argument("--out", required=True, help="folder to write (refused if it exists, unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true")
    return parser


def run(args: argparse.Namespace) -> int:
    quantize_to_folder(
        model=args.model,
        recipe=args.recipe,
        out=Path(args.out),
        overwrite=args.overwrite,
        scheduler=args.scheduler,
        device=args.device,
        keep=args.keep,
        exclude=args.exclude,
        calibration_steps=args.calibration_steps,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return guarded(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
