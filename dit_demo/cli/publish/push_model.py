"""`dit-demo push-model` (also `python hub/push_quantized.py`): quantize a DiT, write a complete Hub repo folder
(pipeline + measured model card + gallery), and with --push upload it in one commit.

    dit-demo push-model --model embedded --recipe int8 --repo-id USER/dit-digits-int8                   # dry run
    dit-demo push-model --model embedded --recipe int8 --repo-id USER/dit-digits-int8 \
        --source-url https://huggingface.co/spaces/USER/dit-quanto-demo --push                          # upload

The dry run stops after writing the folder (inspect it; `--push` later reuses it unchanged, re-rendering only the
card for a new --source-url). Every number in the card is measured in the run that writes it and recorded in
`measurements.json` next to the card. --source-url is the public URL of this project's source that the card links
and its Reproduce command clones (a git repo, or a Space deployed with `dit-demo deploy-space`, which holds the
same app.py, dit_demo/ and requirements.txt); it is required with --push, because no public URL of the project is
known to the tool itself.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from dit_demo.cli.common import add_quantize_args, comma_ints, comma_list, guarded
from dit_demo.engine.quant.recipes import SAVABLE_RECIPES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dit-demo push-model",
        description="Quantize a DiT, write a complete Hub repo folder (pipeline + measured model card + gallery), "
        "and with --push upload it in one commit.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="embedded", help="embedded | Hub id | folder | tiny-random | dit-xl-2-*")
    parser.add_argument("--repo-id", required=True, help="USER/NAME of the model repo to create")
    parser.add_argument("--out", help="folder to write (default: out/hub/NAME)")
    parser.add_argument("--push", action="store_true", help="upload the folder (default: dry run, nothing uploaded)")
    parser.add_argument("--private", action="store_true")
    parser.add_argument(
        "--source-url",
        help="public URL of this project's source (git repo or Space) for the card's snippets and Reproduce command; "
        "required with --push (a dry run shows a placeholder)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--revision", help="push to this branch (created from main if missing)")
    where.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing to main")
    parser.add_argument(
        "--overwrite", action="store_true", help="rebuild an existing --out folder; replace a different card"
    )
    parser.add_argument(
        "--labels", type=comma_list, help="comma-separated class names or ids for the gallery (default: spread)"
    )
    parser.add_argument(
        "--seeds", type=comma_ints, help="comma-separated seeds, one per label, or one start seed (default: 0)"
    )
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=4.0)
    add_quantize_args(parser, recipes=SAVABLE_RECIPES)
    parser.add_argument("--warmup", action="store_true", help="run each variant once before timing (GPU, compile)")
    return parser


def run(args: argparse.Namespace) -> int:
    from dit_demo.hub.io import Target, resolve_token
    from dit_demo.hub.model_repo import ModelRepoSpec, publish_model

    spec = ModelRepoSpec(
        repo_id=args.repo_id,
        model=args.model,
        recipe=args.recipe,
        labels=args.labels,
        seeds=args.seeds,
        steps=args.steps,
        guidance=args.guidance,
        device=args.device,
        keep=args.keep,
        exclude=args.exclude,
        calibration_steps=args.calibration_steps,
        warmup=args.warmup,
        source_url=args.source_url,
    )
    target = Target(
        repo_id=args.repo_id,
        revision=args.revision,
        create_pr=args.create_pr,
        private=args.private,
        token=resolve_token() if args.push else None,
    )
    out = Path(args.out or Path("out") / "hub" / args.repo_id.split("/")[-1])
    publish_model(spec, out, target, push=args.push, overwrite=args.overwrite)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return guarded(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
