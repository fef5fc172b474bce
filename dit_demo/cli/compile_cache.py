"""`dit-demo compile-cache`: compile the Space's variants once on a GPU and save torch.compile's caches to ship.

    dit-demo compile-cache --model facebook/DiT-XL-2-256 --recipes bf16,int8,fp8-a8 --out compile-cache/dit.bin
    dit-demo deploy-space --repo-id USER/NAME --model facebook/DiT-XL-2-256 --hardware zero-a10g \\
        --compile-cache compile-cache/dit.bin

A fresh process's first compiled request then loads these caches instead of compiling from nothing: on an H200,
9.0 / 9.2 / 11.6 s instead of 25.9 / 38.4 / 57.2 s for bf16 / int8 / fp8-a8 at 256² (bench/h200-aot, run 3), which
fits in one ZeroGPU call. Run it on the GPU type and torch version the Space runs (the cache records both and is
refused elsewhere), in bf16 as ZeroGPU runs, at the batch sizes visitors ask for (each batch size compiles apart).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from dit_demo.cli.common import comma_ints, comma_list, guarded


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dit-demo compile-cache",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="embedded", help="the Space's default model (Hub id, folder, embedded)")
    parser.add_argument("--recipes", type=comma_list, default=["bf16", "int8", "fp8-a8"], help="comma-separated")
    parser.add_argument("--batch", type=comma_ints, default=[1], help="comma-separated batch sizes to compile")
    parser.add_argument("--guidance", type=float, default=4.0, help="> 1 compiles the CFG shape (rows doubled)")
    parser.add_argument("--steps", type=int, default=2, help="steps of the compiling request (shapes do not change)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default="compile-cache/dit.bin", help="NAME.bin (NAME.json is written beside it)")
    return parser


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dit_demo.engine.fast.compile_cache import write_compile_cache

    report = write_compile_cache(
        args.model,
        recipes=args.recipes,
        batches=args.batch,
        guidance_scale=args.guidance,
        steps=args.steps,
        device=args.device,
        path=Path(args.out),
    )
    for line in report:
        print(line, flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return guarded(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
