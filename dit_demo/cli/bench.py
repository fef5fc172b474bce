"""`dit-demo bench`: speed, memory and quality of every recipe and compile mode, as ratios to bf16 of the same run.

Writes results.json, results.md and latency_vs_memory.png to --out (rewritten after every cell). The library part
is `dit_demo.reports.bench` (`BenchConfig`, `run_bench`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from dit_demo.cli.common import comma_ints, comma_list, guarded

# The engine's tables (`engine.fast.COMPILE_MODES`, `LINEAR_KERNELS`), spelled here so --help needs no torch;
# tests/cli/test_cli_reports.py asserts they are equal.
COMPILE_MODE_NAMES = ("none", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
KERNEL_NAMES = ("auto", "triton", "mixed", "shape", "torch")
CAPTURE_NAMES = ("auto", "step", "forward")
FUSE_CHOICES = {"auto": None, "off": False, "on": True}


def fuse_choices(text: str) -> list[bool]:
    values = comma_list(text)
    unknown = [v for v in values if v not in FUSE_CHOICES]
    if unknown:
        raise argparse.ArgumentTypeError(f"--fuse-qkv takes auto, off and/or on, not {', '.join(unknown)}")
    return [FUSE_CHOICES[v] for v in values]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dit-demo bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="dit-xl-2-256-random")
    parser.add_argument("--recipes", type=comma_list, default=["bf16", "int8", "int8-a8"], help="comma-separated")
    parser.add_argument("--batch", type=comma_ints, default=[1], help="comma-separated batch sizes")
    parser.add_argument(
        "--compile",
        type=comma_list,
        default=["none", "reduce-overhead"],
        help=f"comma-separated: {', '.join(COMPILE_MODE_NAMES)}",
    )
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup-runs", type=int, default=2)
    parser.add_argument("--forward-runs", type=int, default=20)
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--no-fast-linears", action="store_true", help="compile quanto's own modules instead of swapping in Int8Linear"
    )
    parser.add_argument(
        "--kernels",
        type=comma_list,
        default=["auto"],
        help="comma-separated int8 linear kernels for the compiled int8 cells "
        f"({', '.join(KERNEL_NAMES)}; auto = the measured per-shape choice on a GPU with a kernel table, else plain "
        "torch ops): one cell each",
    )
    parser.add_argument(
        "--capture",
        type=comma_list,
        default=["auto"],
        help="comma-separated, one cell each for compiled cells: step (the whole denoising step and the decode as "
        "CUDA graphs), forward (torch.compile's own graphs around the forward), auto (step on a GPU)",
    )
    parser.add_argument(
        "--fuse-qkv",
        type=fuse_choices,
        default=[None],
        help="comma-separated, one cell each for compiled cells: off, on, auto (on with step capture)",
    )
    parser.add_argument(
        "--eager-recipes",
        default="all",
        help="comma-separated recipes that also get an eager (compile none) cell; bf16 always does (default: all)",
    )
    parser.add_argument("--fullgraph", action="store_true", help="fail instead of allowing graph breaks")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="also profile N forwards per cell (kernel tables in --out)"
    )
    parser.add_argument("--out", default="bench-out")
    return parser


def config_from_args(args: argparse.Namespace):
    """The command line as a `BenchConfig` (checked on construction)."""
    from dit_demo.reports.bench import BenchConfig

    return BenchConfig(
        model=args.model,
        recipes=tuple(args.recipes),
        batches=tuple(args.batch),
        compile_modes=tuple(args.compile),
        kernels=tuple(args.kernels),
        captures=tuple(args.capture),
        fuse=tuple(args.fuse_qkv),
        eager_recipes=None if args.eager_recipes == "all" else tuple(comma_list(args.eager_recipes)),
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        runs=args.runs,
        warmup_runs=args.warmup_runs,
        forward_runs=args.forward_runs,
        device=args.device,
        fast_linears=not args.no_fast_linears,
        fullgraph=args.fullgraph,
        profile=args.profile,
        out=args.out,
    )


def run(args: argparse.Namespace) -> int:
    from dit_demo.reports.bench import run_bench

    run_bench(config_from_args(args))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return guarded(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
