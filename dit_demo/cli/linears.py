"""`dit-demo linears`: the linears of one real transformer forward, timed kernel by kernel (CUDA only).

Records every int8 linear call of one forward (rows M, in K, out N, calls per forward) and times each shape alone
with bf16, weight-only int8 and w8a8 kernels (plain torch ops vs Triton), compiled and replayed under CUDA graphs.
Writes linears.json and linears.md to --out. The library part is `dit_demo.reports.linears`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from dit_demo.cli.common import guarded


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dit-demo linears", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="dit-xl-2-256-random")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--guidance", type=float, default=4.0)
    parser.add_argument("--out", default="bench-out")
    return parser


def run(args: argparse.Namespace) -> int:
    from dit_demo.reports.linears import run_linears

    run_linears(model=args.model, batch=args.batch, guidance=args.guidance, out=args.out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return guarded(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
