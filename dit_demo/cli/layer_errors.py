"""`dit-demo layer-errors`: which layers and which timesteps carry a recipe's quantization error.

Every quantized layer is fed its full-precision twin's exact input at every sampling step (its own error, not
inherited), and the noise prediction is compared step by step with the twin's; the table shows SNR in dB per layer,
per range of timesteps, for each recipe (default: int8-a8 before smoothing, int8-a8-smooth after).
Writes layer_errors.json and layer_errors.md to --out. The library part is `dit_demo.reports.layer_errors`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from dit_demo.cli.common import MODEL_HELP, comma_list, guarded
from dit_demo.engine.quant.recipes import QUANTIZED_RECIPES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dit-demo layer-errors", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="embedded", help=MODEL_HELP)
    parser.add_argument(
        "--recipes",
        type=comma_list,
        default=["int8-a8", "int8-a8-smooth"],
        help=f"comma-separated, from {', '.join(QUANTIZED_RECIPES)} (default: int8-a8,int8-a8-smooth)",
    )
    parser.add_argument("--labels", type=comma_list, default=None, help="class names or ids (default: spread)")
    parser.add_argument("--images", type=int, default=8, help="images when --labels is not given (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=4.0)
    parser.add_argument("--bins", type=int, default=5, help="timestep ranges in the per-recipe grid (default 5)")
    parser.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--calibration-steps", type=int, default=25, help="sampling steps to calibrate the recipes")
    parser.add_argument("--out", default="layer-errors", help="folder for layer_errors.json and layer_errors.md")
    return parser


def run(args: argparse.Namespace) -> int:
    from dit_demo.reports.layer_errors import run_layer_errors

    run_layer_errors(
        out=args.out,
        model=args.model,
        recipes=args.recipes,
        labels=args.labels,
        images=args.images,
        seed=args.seed,
        steps=args.steps,
        guidance=args.guidance,
        bins=args.bins,
        device=args.device,
        threads=args.threads,
        calibration_steps=args.calibration_steps,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return guarded(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
