"""`dit-demo gallery`: the same classes and seeds through every recipe, side by side, with the numbers.

    dit-demo gallery --model embedded --recipes bf16,int8,int8-a8 --labels all --seeds 0,1 \
        --steps 25 --guidance 4 --out /tmp/my-gallery

    dit-demo gallery --shipped    # regenerate the shipped gallery/embedded, with its own settings

`--out gallery/embedded` without `--shipped` is refused: that folder is the shipped gallery the app shows, and a
run with other settings would silently replace it. `--shipped` writes exactly what is shipped (every digit, seeds
0-9, bf16,int8,int8-a8,fp8,int4, 25 steps, guidance 4, batch 10, 2 torch threads); other options may not be
combined with it.

writes to DIR: `grid.png` (rows = class × seed, columns = recipes, reference first), `diff_grid.png` and
`diffs/<recipe>/*.png` (|recipe − reference| × gain), `images/<recipe>/*.png` (native resolution),
`chart.png` (per-step latency vs transformer weights), `index.html` (self-contained, sortable table, opens
from disk), `results.json` (config, environment, per-recipe and per-image metrics) and `results.md`.

Why multi-process: FID needs thousands of images. Under Hugging Face Accelerate every process takes a disjoint
share of fixed-size batches of (class, seed) jobs, builds its own variants on its own device, and the main
process gathers and writes. Batches are laid out before splitting and every image has its own seed, so the
gathered images equal a one-process run's (bit-identical on CPU with the same torch threads per process:
CPU kernels split reductions by thread count); only timings differ. On GPUs::

    accelerate launch --multi_gpu --num_processes 4 -m dit_demo.cli.gallery --per-class 100 --out DIR

On CPU, `accelerate launch --cpu` starts ONE process (accelerate's simple launcher); for several CPU processes
use the torchrun launcher with the CPU flag in the environment::

    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \
        --mixed_precision no --dynamo_backend no -m dit_demo.cli.gallery ...

The library part is `dit_demo.reports.gallery` (`GalleryConfig`, `run_gallery`, `write_gallery`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from dit_demo.app.config import GALLERY_DIR
from dit_demo.cli.common import MODEL_HELP, SCHEDULER_NAMES, comma_ints, comma_list, guarded
from dit_demo.engine.model.shipped import default_source
from dit_demo.engine.quant.recipes import RECIPES
from dit_demo.errors import InvalidRequestError

DEFAULT_RECIPES_HELP = "bf16,int8,int8-a8"  # GalleryConfig's default (tests/reports assert they agree)
SHIPPED_DIR = GALLERY_DIR  # gallery/embedded: what the app's Gallery tab shows
# The settings of the shipped gallery (its results.json `config` records them).
SHIPPED_ARGS = [
    "--model", "mnist", "--recipes", "bf16,int8,int8-dynamic,int8-a8,fp8,int4",
    "--seeds", "0,1,2", "--steps", "25", "--guidance", "4", "--batch-size", "10",
    "--calibration-steps", "25", "--max-rows-shown", "20", "--threads", "1",
]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dit-demo gallery", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=default_source(), help=MODEL_HELP)
    parser.add_argument(
        "--recipes",
        type=comma_list,
        default=None,
        help=f"comma list of {', '.join(RECIPES)}; the reference comes first (default {DEFAULT_RECIPES_HELP})",
    )
    parser.add_argument(
        "--labels",
        default=None,
        help="comma list of class names or ids, or 'all' for every class of the model (default: all "
        "classes of a ≤ 10-class model, else 4 spread classes)",
    )
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument(
        "--seeds",
        type=comma_ints,
        default=None,
        help="comma list of seeds: one grid row per class × seed (default 0,1)",
    )
    seeds.add_argument("--per-class", type=int, default=None, help="N images per class: seeds --seed … --seed+N-1")
    parser.add_argument("--seed", type=int, default=0, help="first seed for --per-class")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=4.0)
    parser.add_argument("--scheduler", default=None, choices=list(SCHEDULER_NAMES))
    parser.add_argument("--batch-size", type=int, default=8, help="images per generate() call (fixed layout)")
    parser.add_argument("--calibration-steps", type=int, default=25, help="sampling steps to calibrate int8-a8")
    parser.add_argument("--no-warmup", action="store_true", help="time the first batch cold")
    parser.add_argument("--gain", type=float, default=8.0, help="amplification of difference tiles")
    parser.add_argument("--tile", type=int, default=96, help="minimum tile size in the grid (NEAREST upscaling)")
    parser.add_argument("--max-rows-shown", type=int, default=50, help="rows in the grid and page (metrics: all)")
    parser.add_argument("--device", default=None, help="cpu | cuda (default: accelerate's device for this process)")
    parser.add_argument("--machine", default=None, help="machine name for the results (default: detected)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads per process (CPU results are bit-identical "
        "between runs with the same thread count; default: torch's / OMP_NUM_THREADS)",
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", help="output folder (a scratch folder; gallery/embedded only with --shipped)")
    parser.add_argument(
        "--shipped",
        action="store_true",
        help=f"regenerate the shipped gallery ({SHIPPED_DIR.name} under gallery/) with its own settings",
    )
    return parser


def checked_args(args: argparse.Namespace) -> argparse.Namespace:
    """The `--shipped` rules: the shipped gallery's own settings and folder, and no silent overwrite of it."""
    parser = build_parser()
    if args.shipped:
        defaults = vars(parser.parse_args([]))
        free = {"shipped", "no_progress", "device", "machine", "out"}
        given = sorted(k for k, v in vars(args).items() if k not in free and v != defaults.get(k))
        if args.out and Path(args.out).resolve() != SHIPPED_DIR.resolve():
            given.append("out")
        if given:
            flags = " ".join("--" + k.replace("_", "-") for k in given) + "."
            raise InvalidRequestError(f"--shipped uses the shipped gallery's settings and folder; leave out {flags}")
        shipped = parser.parse_args([*SHIPPED_ARGS, "--out", str(SHIPPED_DIR)])
        shipped.no_progress, shipped.device, shipped.machine = args.no_progress, args.device, args.machine
        return shipped
    if not args.out:
        raise InvalidRequestError("give --out DIR (a scratch folder), or --shipped to regenerate the shipped gallery.")
    if Path(args.out).resolve() == SHIPPED_DIR.resolve():
        raise InvalidRequestError(
            f"{args.out} is the shipped gallery the app shows: regenerate it with `dit-demo gallery --shipped` (its "
            "own settings), or write this run to another folder."
        )
    return args


def seeds_from_args(args: argparse.Namespace) -> list[int]:
    if args.per_class is not None:
        if args.per_class < 1:
            raise InvalidRequestError(f"--per-class must be ≥ 1, got {args.per_class}.")
        return [args.seed + i for i in range(args.per_class)]
    return args.seeds if args.seeds is not None else [0, 1]


def config_from_args(args: argparse.Namespace):
    """The parsed command line as the library's `GalleryConfig` (library code never sees the Namespace)."""
    from dit_demo.reports.gallery import GalleryConfig

    optional = {"recipes": args.recipes} if args.recipes is not None else {}
    return GalleryConfig(
        source=args.model,
        labels=None if args.labels in (None, "") else "all" if args.labels == "all" else comma_list(args.labels),
        seeds=seeds_from_args(args),
        steps=args.steps,
        guidance_scale=args.guidance,
        scheduler=args.scheduler,
        batch_size=args.batch_size,
        calibration_steps=args.calibration_steps,
        warmup=not args.no_warmup,
        gain=args.gain,
        min_tile=args.tile,
        max_rows_shown=args.max_rows_shown,
        device=args.device,
        machine=args.machine,
        **optional,
    )


def run(args: argparse.Namespace) -> int:
    args = checked_args(args)
    import torch

    from dit_demo.reports.gallery import metrics_table, run_gallery, write_gallery

    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    try:
        gallery = run_gallery(config_from_args(args), progress=not args.no_progress)
        if gallery is None:  # not the main process: it has handed its share to the main one
            return 0
        paths = write_gallery(gallery, args.out)
    finally:
        torch.set_num_threads(threads)
    print(metrics_table(gallery))
    print(f"{gallery.num_processes} process(es), {gallery.images_per_s} images/s; wrote {paths['html']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return guarded(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
