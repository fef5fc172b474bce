"""`dit-demo evaluate`: digit accuracy, FID and PSNR/SSIM of the embedded digits model per recipe and guidance.

Generates --samples digits per recipe and guidance (labels i % 10, seeds --seed..) on the CPU, scores them with the
shipped CNN judge against the held-out real digits and against full precision on the same seeds, checks the stated
targets and writes quality.json and quality.md to --out. The library part is `dit_demo.reports.evaluate`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from dit_demo.cli.common import comma_list, guarded
from dit_demo.engine.model.shipped import default_source


def comma_floats(text: str) -> list[float]:
    """`1,2,4` → [1.0, 2.0, 4.0] (an argparse `type`)."""
    try:
        return [float(item) for item in comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dit-demo evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--guidance", type=comma_floats, default=[1.0, 2.0, 4.0], help="comma-separated scales")
    parser.add_argument(
        "--recipes",
        type=comma_list,
        default=["bf16", "int8", "int8-a8", "fp8", "int4"],
        help="comma-separated; a recipe may keep module groups in full precision: int8-a8:keep=adaln+embedders, "
        "and/or run the GPU fast path's layers: int8:fast",
    )
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", default=default_source(), help="mnist (default when present) | embedded | folder")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads for the whole run, sampling included (default 1)"
    )
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (fp32 reference; TF32 off on CUDA)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the real-digit baseline (needs sklearn)")
    parser.add_argument("--out", type=Path, required=True)
    return parser


def config_from_args(args: argparse.Namespace):
    """The command line as an `EvaluateConfig`."""
    from dit_demo.reports.evaluate import EvaluateConfig

    return EvaluateConfig(
        out=args.out,
        samples=args.samples,
        guidances=tuple(args.guidance),
        recipes=tuple(args.recipes),
        steps=args.steps,
        batch=args.batch,
        seed=args.seed,
        source=args.source,
        threads=args.threads,
        baseline=not args.no_baseline,
        device=args.device,
    )


def run(args: argparse.Namespace) -> int:
    from dit_demo.reports.evaluate import evaluate

    evaluate(config_from_args(args))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return guarded(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
