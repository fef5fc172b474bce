"""Prepare (and with --push upload) a Gradio Space that runs this demo with a chosen default model.

    python hub/deploy_space.py --repo-id USER/dit-quanto-demo --model USER/dit-xl-2-256-int8          # dry run
    python hub/deploy_space.py --repo-id USER/dit-quanto-demo --model USER/dit-xl-2-256-int8 --push   # upload

The Space folder holds app.py, dit_demo/, requirements.txt and a README whose front matter is the project's
(sdk gradio, sdk_version, python_version "3.12"). How the default model reaches the app, which reads the
`DIT_DEMO_MODEL` environment variable:
  * `space_app.py` (the Space's `app_file`) does `os.environ.setdefault("DIT_DEMO_MODEL", MODEL)` and runs app.py
    as `__main__`, so the choice travels inside the one commit and works with no further API call;
  * with --push the same value is also set as a Space *variable* (Settings → Variables, an environment variable at
    run time): editing it there later overrides the default without a new commit, because of `setdefault`.
A Hub model id is also listed under `models:` (links the Space and model pages) and `preload_from_hub:` (the
Space's build downloads the weights, so the first visitor does not wait for them).
"""

# ruff: noqa: E402  (the project root goes on sys.path before the project is imported)
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from huggingface_hub import SpaceCard, SpaceCardData

from dit_demo.engine.sources import resolve_source
from dit_demo.errors import DemoError
from dit_demo.hub_io import (
    Target,
    check_write_access,
    describe_push,
    publish_folder,
    resolve_token,
    run_cli,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MODEL_ENV = "DIT_DEMO_MODEL"
APP_FILE = "space_app.py"
REQUIRED_FILES = ("app.py", "requirements.txt", "README.md")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info")

SPACE_APP = '''"""Space entry point: the default model chosen at deploy time, then the project's app.py as __main__.

A Space variable {env} (Settings -> Variables) overrides the default below without a new commit.
"""

import os
import runpy
from pathlib import Path

os.environ.setdefault({env!r}, {model!r})
runpy.run_path(str(Path(__file__).with_name("app.py")), run_name="__main__")
'''

SPACE_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

{{ short_description }}

Default model: **`{{ model }}`**{% if model_link %} ([model card]({{ model_link }})){% endif %}. Any other source
(a Hub id such as `facebook/DiT-XL-2-256`, `embedded`, `tiny-random`) can be chosen in the app.

Deployed by `hub/deploy_space.py` of the dit_demo project. To change the default without a new commit, set the
Space variable `{{ env }}` in Settings → Variables; the app reads it at start-up.
"""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hub/deploy_space.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo-id", required=True, help="USER/NAME of the Space")
    parser.add_argument("--model", default="embedded", help="default model of the app (Hub id, embedded, ...)")
    parser.add_argument("--out", help="folder to write (default: out/hub/spaces/NAME)")
    parser.add_argument("--push", action="store_true", help="upload (default: dry run, nothing uploaded)")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--hardware", help="e.g. t4-small; default: whatever the Space has (cpu-basic when new)")
    parser.add_argument("--project-root", default=str(PROJECT_ROOT), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def read_front_matter(readme: Path) -> tuple[dict, str]:
    text = readme.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return {}, text
    _, header, body = text.split("---", 2)
    data = yaml.safe_load(header) or {}
    if not isinstance(data, dict):
        raise DemoError(f"{readme}: the front matter is not a YAML mapping.")
    return data, body


def space_card(front: dict, model: str, is_hub_model: bool) -> SpaceCard:
    """The project's Space front matter, pointed at space_app.py and the default model."""
    meta = dict(front)
    meta.update(sdk="gradio", app_file=APP_FILE, python_version=str(meta.get("python_version") or "3.12"))
    if not meta.get("sdk_version"):
        raise DemoError("The project's README front matter has no sdk_version: the Space needs the Gradio version.")
    meta["sdk_version"] = str(meta["sdk_version"])
    if is_hub_model:
        meta["models"] = [model]
        meta["preload_from_hub"] = [model]
    title = str(meta.get("title") or "DiT Quanto Demo")
    data = SpaceCardData(**meta)
    return SpaceCard.from_template(
        data,
        template_str=SPACE_TEMPLATE,
        title=title,
        short_description=meta.get("short_description", ""),
        model=model,
        model_link=f"https://huggingface.co/{model}" if is_hub_model else None,
        env=MODEL_ENV,
    )


def stage_space(root: Path, out: Path, model: str) -> None:
    """Write the Space folder atomically (complete or not at all)."""
    missing = [name for name in (*REQUIRED_FILES, "dit_demo") if not (root / name).exists()]
    if missing:
        raise DemoError(f"{root} lacks {', '.join(missing)}: run this from the project checkout.")
    info = resolve_source(model)  # refuses a source string the app could not load
    front, _ = read_front_matter(root / "README.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    try:
        folder = stage / "space"
        folder.mkdir()
        shutil.copy2(root / "app.py", folder / "app.py")
        shutil.copy2(root / "requirements.txt", folder / "requirements.txt")
        shutil.copytree(root / "dit_demo", folder / "dit_demo", ignore=IGNORE)
        (folder / APP_FILE).write_text(SPACE_APP.format(env=MODEL_ENV, model=info.source), encoding="utf-8")
        space_card(front, info.source, info.kind == "hub").save(folder / "README.md")
        SpaceCard.load(folder / "README.md")  # the Hub must be able to parse what we wrote
        if out.exists():
            shutil.rmtree(out)
        folder.rename(out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    if args.repo_id.count("/") != 1:
        raise DemoError(f"--repo-id must be USER/NAME, got {args.repo_id!r}.")
    out = Path(args.out or Path("out") / "hub" / "spaces" / args.repo_id.split("/")[-1])
    target = Target(
        repo_id=args.repo_id, repo_type="space", private=args.private, token=resolve_token() if args.push else None
    )
    if args.push:
        print(f"authenticated as {check_write_access(target)}", flush=True)
    stage_space(Path(args.project_root), out, args.model)
    model = resolve_source(args.model).source
    print(f"wrote {out} (default model {model})")
    extra = [f"and set the Space variable {MODEL_ENV}={model} (Settings → Variables)"]
    if args.hardware:
        extra.append(f"and request hardware {args.hardware}")
    if not args.push:
        print(describe_push(out, target, extra))
        print("dry run: nothing uploaded. Rerun with --push to upload.")
        return 0

    def configure(api) -> None:
        """Runs after the Space exists and before the upload: a failure here leaves no files uploaded."""
        api.add_space_variable(args.repo_id, MODEL_ENV, model, description="default model of the demo")
        if args.hardware:
            api.request_space_hardware(args.repo_id, args.hardware)

    info = publish_folder(
        out, target, f"Deploy dit_demo Space (default model {model})", space_sdk="gradio", before_upload=configure
    )
    print(f"pushed: {info.commit_url}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
