"""The demo as a Gradio Space with a chosen default model: the folder, and its one-commit upload.

The Space folder holds app.py, dit_demo/, requirements.txt and a README whose front matter is the project's
(sdk gradio, sdk_version, python_version "3.12"); the app imports `dit_demo` from the folder itself, so the Space
installs only requirements.txt. How the default model reaches the app, which reads the environment variable
`model_env` (`dit_demo.app.config.MODEL_ENV`, DIT_DEMO_MODEL; the app's layer is above this one, so the command
passes the name in):
  * `space_app.py` (the Space's `app_file`) does `os.environ.setdefault("DIT_DEMO_MODEL", MODEL)` and runs app.py
    as `__main__`, so the choice travels inside the one commit and works with no further API call;
  * with push the same value is also set as a Space *variable* (Settings → Variables, an environment variable at
    run time): editing it there later overrides the default without a new commit, because of `setdefault`.
A Hub model id is also listed under `models:` (links the Space and model pages) and `preload_from_hub:` (the
Space's build downloads the weights, so the first visitor does not wait for them).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from huggingface_hub import SpaceCard, SpaceCardData

from dit_demo.engine.sources import resolve_source
from dit_demo.errors import DemoError
from dit_demo.hub.io import Target, check_repo_id, check_write_access, describe_push, publish_folder, staging

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

Deployed by `dit-demo deploy-space` (`hub/deploy_space.py`) of the dit_demo project. To change the default without a
new commit, set the Space variable `{{ env }}` in Settings → Variables; the app reads it at start-up.
"""


def default_project_root() -> Path:
    """The checkout this package was imported from (an editable install or a clone), else the working directory."""
    checkout = Path(__file__).resolve().parents[2]
    return checkout if (checkout / "app.py").is_file() else Path.cwd()


def read_front_matter(readme: Path) -> tuple[dict, str]:
    text = readme.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return {}, text
    _, header, body = text.split("---", 2)
    data = yaml.safe_load(header) or {}
    if not isinstance(data, dict):
        raise DemoError(f"{readme}: the front matter is not a YAML mapping.")
    return data, body


def space_card(front: dict, model: str, is_hub_model: bool, model_env: str) -> SpaceCard:
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
        env=model_env,
    )


def stage_space(root: Path, out: Path, model: str, model_env: str) -> None:
    """Write the Space folder atomically (complete or not at all)."""
    missing = [name for name in (*REQUIRED_FILES, "dit_demo") if not (root / name).exists()]
    if missing:
        raise DemoError(f"{root} lacks {', '.join(missing)}: run this from the project checkout.")
    info = resolve_source(model)  # refuses a source string the app could not load
    front, _ = read_front_matter(root / "README.md")
    with staging(out) as stage:
        folder = stage / "space"
        folder.mkdir()
        shutil.copy2(root / "app.py", folder / "app.py")
        shutil.copy2(root / "requirements.txt", folder / "requirements.txt")
        shutil.copytree(root / "dit_demo", folder / "dit_demo", ignore=IGNORE)
        (folder / APP_FILE).write_text(SPACE_APP.format(env=model_env, model=info.source), encoding="utf-8")
        space_card(front, info.source, info.kind == "hub", model_env).save(folder / "README.md")
        SpaceCard.load(folder / "README.md")  # the Hub must be able to parse what we wrote
        if out.exists():
            shutil.rmtree(out)
        folder.rename(out)


def deploy_space(
    root: Path, out: Path, target: Target, model: str, *, model_env: str, push: bool, hardware: str | None = None
) -> str:
    """Stage the Space folder at `out`; with `push`, set the model variable (and hardware) and upload it as one
    commit. Returns the default model's source string."""
    check_repo_id(target.repo_id)
    if push:
        print(f"authenticated as {check_write_access(target)}", flush=True)
    stage_space(root, out, model, model_env)
    model = resolve_source(model).source
    print(f"wrote {out} (default model {model})")
    extra = [f"and set the Space variable {model_env}={model} (Settings → Variables)"]
    if hardware:
        extra.append(f"and request hardware {hardware}")
    if not push:
        print(describe_push(out, target, extra))
        print("dry run: nothing uploaded. Rerun with --push to upload.")
        return model

    def configure(api) -> None:
        """Runs after the Space exists and before the upload: a failure here leaves no files uploaded."""
        api.add_space_variable(target.repo_id, model_env, model, description="default model of the demo")
        if hardware:
            api.request_space_hardware(target.repo_id, hardware)

    info = publish_folder(
        out, target, f"Deploy dit_demo Space (default model {model})", space_sdk="gradio", before_upload=configure
    )
    print(f"pushed: {info.commit_url}")
    return model
