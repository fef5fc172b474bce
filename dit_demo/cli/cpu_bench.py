"""`dit-demo cpu-bench`: is a recipe faster than fp32 on this CPU? Interleaved rounds, median and range per cell.

Writes results.json and results.md to --out after every cell. The library part is `dit_demo.reports.cpu_bench`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from dit_demo.cli.common import comma_ints, comma_list, guarded


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dit-demo cpu-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=comma_list, default=["embedded", "dit-xl-2-256-random"])
    parser.add_argument(
        "--recipes", type=comma_list, default=["bf16", "int8", "int8-dynamic"], help="comma-separated; bf16 first"
    )
    parser.add_argument("--batch", type=comma_ints, default=[1, 4], help="comma-separated batch sizes")
    parser.add_argument("--threads", type=comma_ints, default=[1, 2], help="comma-separated torch thread counts")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds per cell (at least 2)")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=4.0)
    parser.add_argument(
        "--sample-models",
        type=comma_list,
        default=["embedded"],
        help="models whose whole sampling call is timed too (XL/2 takes minutes per call on a CPU)",
    )
    parser.add_argument("--out", default="bench-cpu-out")
    return parser


def run(args: argparse.Namespace) -> int:
    from dit_demo.reports.cpu_bench import CpuBenchConfig, run_cpu_bench

    config = CpuBenchConfig(
        models=tuple(args.models),
        recipes=tuple(args.recipes),
        batches=tuple(args.batch),
        threads=tuple(args.threads),
        rounds=args.rounds,
        steps=args.steps,
        guidance=args.guidance,
        sample_models=tuple(args.sample_models),
        out=args.out,
    )
    record = run_cpu_bench(config)
    print(f"{len(record['cells'])} cells written to {args.out}/results.md")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return guarded(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
