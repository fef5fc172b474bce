"""`dit-demo deploy-space` (also `python hub/deploy_space.py`): prepare, and with --push upload, a Gradio Space
that runs this demo with a chosen default model.

    dit-demo deploy-space --repo-id USER/dit-quanto-demo --model USER/dit-digits-int8          # dry run
    dit-demo deploy-space --repo-id USER/dit-quanto-demo --model USER/dit-digits-int8 --push   # upload

The folder is built from the project checkout (app.py, dit_demo/, requirements.txt, README front matter, and what
the app's gallery and benchmark tabs show); the default model reaches the app through space_app.py and, with --push,
the Space variable DIT_DEMO_MODEL. A local pipeline folder as --model (e.g. one written by `dit-demo push-model`) is
shipped inside the Space. --hardware is written as `suggested_hardware` (default cpu-basic) and, with --push,
requested; on CPU hardware the Space's requirements.txt takes PyTorch's CPU wheel index (not verifiable offline).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from dit_demo.cli.common import guarded


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dit-demo deploy-space",
        description="Prepare (and with --push upload) a Gradio Space that runs this demo with a chosen default model.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repo-id", required=True, help="USER/NAME of the Space")
    parser.add_argument("--model", default="embedded", help="default model of the app (Hub id, embedded, ...)")
    parser.add_argument("--out", help="folder to write (default: out/hub/spaces/NAME)")
    parser.add_argument("--push", action="store_true", help="upload (default: dry run, nothing uploaded)")
    parser.add_argument("--private", action="store_true")
    parser.add_argument(
        "--hardware",
        help="cpu-basic (default), cpu-upgrade, t4-small, zero-a10g (ZeroGPU), ...: the front matter's "
        "suggested_hardware and the Space's torch wheel; with --push also requested for the Space",
    )
    parser.add_argument(
        "--compile-cache",
        help="a `dit-demo compile-cache` file (NAME.bin, NAME.json beside it) to ship: on ZeroGPU the first compiled "
        "request loads it instead of compiling from nothing",
    )
    parser.add_argument(
        "--project-root", default=None, help="the checkout to deploy (default: the one dit_demo runs from, or .)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from dit_demo.app import config
    from dit_demo.app.config import MODEL_ENV
    from dit_demo.hub.io import Target, resolve_token
    from dit_demo.hub.space import default_project_root, deploy_space

    target = Target(
        repo_id=args.repo_id, repo_type="space", private=args.private, token=resolve_token() if args.push else None
    )
    out = Path(args.out or Path("out") / "hub" / "spaces" / args.repo_id.split("/")[-1])
    root = Path(args.project_root) if args.project_root else default_project_root()
    from huggingface_hub import SpaceHardware

    from dit_demo.errors import DemoError

    known = [h.value for h in SpaceHardware]
    if args.hardware and args.hardware not in known:
        raise DemoError(f"Unknown Space hardware {args.hardware!r}: choose one of {', '.join(known)}.")
    static = tuple(p.relative_to(config.ROOT).as_posix() for p in (config.GALLERY_DIR, config.BENCH_DIR))  # the tabs
    deploy_space(
        root,
        out,
        target,
        args.model,
        model_env=MODEL_ENV,
        push=args.push,
        hardware=args.hardware,
        static=static,
        compile_cache=Path(args.compile_cache) if args.compile_cache else None,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return guarded(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
