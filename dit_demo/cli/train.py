"""`dit-demo train`: train the embedded digits model (VAE, class-conditional DiT and CNN judge) on the CPU, seeded.

Data: scikit-learn's `load_digits` (needs scikit-learn), a fixed 80/20 train/held-out split. Writes --out/digits (a
stock diffusers DiTPipeline folder with training.json) and --out/classifier (the judge and the held-out digits).
On a machine whose 2 cores are shared with other jobs, use --threads 1. The library part is
`dit_demo.embedded.train` (`TrainConfig`, `train`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from dit_demo.cli.common import guarded


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dit-demo train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="writes OUT/digits and OUT/classifier; default: the shipped places (dit_demo/engine/model/data/digits "
        "and dit_demo/embedded/classifier)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dit-steps", type=int, default=4000)
    parser.add_argument("--vae-steps", type=int, default=500)
    parser.add_argument("--classifier-steps", type=int, default=600)
    parser.add_argument("--check-samples", type=int, default=100, help="generated digits to score at the end")
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads; 1 is far faster when other jobs share the 2 cores"
    )
    parser.add_argument("--dtype", choices=["float16", "float32"], default="float16", help="dtype of saved weights")
    return parser


def config_from_args(args: argparse.Namespace):
    """The command line as a `TrainConfig`."""
    from dit_demo.embedded.train import TrainConfig

    return TrainConfig(
        out=args.out,
        seed=args.seed,
        dit_steps=args.dit_steps,
        vae_steps=args.vae_steps,
        classifier_steps=args.classifier_steps,
        check_samples=args.check_samples,
        threads=args.threads,
        dtype=args.dtype,
    )


def run(args: argparse.Namespace) -> int:
    from dit_demo.embedded.train import train

    train(config_from_args(args))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return guarded(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
