"""`dit-demo push-gallery` (also `python hub/push_gallery.py`): share a gallery folder as a Hugging Face dataset
repo with a small dataset card.

    dit-demo gallery --model embedded --recipes bf16,int8 --out gallery/embedded
    dit-demo push-gallery gallery/embedded --repo-id USER/dit-digits-gallery            # dry run
    dit-demo push-gallery gallery/embedded --repo-id USER/dit-digits-gallery --push     # upload

Any folder of PNG + JSON works; a `dit-demo gallery` folder (results.json, images/<recipe>/*.png) also gets a
`metadata.jsonl` so the Hub's dataset viewer shows each image with its recipe, class and seed.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from dit_demo.cli.common import guarded


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dit-demo push-gallery",
        description="Share a gallery folder as a Hugging Face dataset repo, with a small dataset card.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folder", help="gallery folder (PNG + JSON)")
    parser.add_argument("--repo-id", required=True, help="USER/NAME of the dataset repo")
    parser.add_argument("--out", help="staging folder to write (default: out/hub/datasets/NAME)")
    parser.add_argument("--push", action="store_true", help="upload (default: dry run, nothing uploaded)")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--license", help="default: the license of the model that drew the images")
    parser.add_argument("--overwrite", action="store_true", help="replace a card that was not made by this script")
    return parser


def run(args: argparse.Namespace) -> int:
    from dit_demo.hub.dataset_repo import publish_gallery
    from dit_demo.hub.io import Target, resolve_token

    target = Target(
        repo_id=args.repo_id, repo_type="dataset", private=args.private, token=resolve_token() if args.push else None
    )
    out = Path(args.out or Path("out") / "hub" / "datasets" / args.repo_id.split("/")[-1])
    publish_gallery(Path(args.folder), out, target, push=args.push, license_=args.license, overwrite=args.overwrite)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return guarded(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
