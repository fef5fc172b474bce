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
Space's build downloads the weights, so the first visitor does not wait for them). A local pipeline folder (for
example a pre-quantized one written by `dit-demo push-model`) is copied into the Space under `models/NAME`, and
space_app.py names it relative to itself, so no path of this machine is written.

What the app's static tabs show (the pre-computed gallery, the benchmark tables and charts: the folders the command
passes as `static`) is copied too, and the README front matter says `suggested_hardware`.

requirements.txt: a CPU Space (cpu-basic, cpu-upgrade) would otherwise take PyPI's default torch wheel, the CUDA
build (a multi-GB download), so its copy gets PyTorch's CPU wheel index (`--extra-index-url`) and the `+cpu` pin;
GPU and ZeroGPU hardware keep the plain pin. The CPU variant is written and checked as text only: that index cannot
be reached from the machines this project is tested on.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml
from huggingface_hub import SpaceCard, SpaceCardData

from dit_demo.engine.fast.compile_cache import SHIPPED_DIR as COMPILE_CACHE_DIR
from dit_demo.engine.model.folder_format import METADATA_NAME, PIPELINE_PARTS
from dit_demo.engine.model.resolver import ResolvedSource, resolve_source
from dit_demo.errors import DemoError
from dit_demo.hub.io import Target, check_repo_id, check_write_access, describe_push, publish_folder, staging

APP_FILE = "space_app.py"
REQUIRED_FILES = ("app.py", "requirements.txt", "README.md")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info")
STATIC_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.py", "*.sh")  # data the tabs show, not scripts
MODELS_DIR = "models"  # a local default model is copied here
CPU_HARDWARE = ("cpu-basic", "cpu-upgrade")
DEFAULT_HARDWARE = "cpu-basic"
CPU_WHEEL_INDEX = "https://download.pytorch.org/whl/cpu"

SPACE_APP = '''"""Space entry point: the default model chosen at deploy time, then the project's app.py as __main__.

A Space variable {env} (Settings -> Variables) overrides the default below without a new commit.
"""

import os
import runpy
from pathlib import Path

os.environ.setdefault({env!r}, {model})
runpy.run_path(str(Path(__file__).with_name("app.py")), run_name="__main__")
'''

SPACE_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

{{ short_description }}

Default model: **`{{ model }}`**{% if model_link %} ([model card]({{ model_link }})){% endif %}{% if shipped %}
(a pipeline folder shipped in this Space){% endif %}. Any other source
(a Hub id such as `facebook/DiT-XL-2-256`, `embedded`, `tiny-random`) can be chosen in the app.

{% if zero_gpu %}On ZeroGPU, "compile (GPU)" {% if compile_cache %}compiles each recipe once per GPU worker from the
torch.compile cache shipped in `{{ compile_cache }}`{% else %}is not offered: this Space ships no compile cache
(`dit-demo compile-cache`, then `deploy-space --compile-cache`){% endif %}. On one full H200 (torch 2.11, DiT-XL/2
256², batch 1) a fresh process's first compiled request took 9.0–11.6 s from a shipped cache against 25.9–57.2 s
cold; AOTInductor packages did not load on that torch 2.11 + CUDA 13.0 image (bench/h200-aot, run 3).
{% endif %}

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


def space_card(
    front: dict, model: str, kind: str, model_env: str, hardware: str = DEFAULT_HARDWARE, compile_cache: str = ""
) -> SpaceCard:
    """The project's Space front matter, pointed at space_app.py and the default model."""
    is_hub_model = kind == "hub"
    meta = dict(front)
    meta.update(sdk="gradio", app_file=APP_FILE, python_version=str(meta.get("python_version") or "3.12"))
    meta["suggested_hardware"] = hardware
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
        shipped=kind == "folder",
        env=model_env,
        zero_gpu=hardware.startswith("zero-"),
        compile_cache=compile_cache,
    )


def space_requirements(text: str, hardware: str) -> str:
    """The project's requirements for this hardware: on CPU hardware, PyTorch's CPU wheel index and `+cpu` pin."""
    if hardware not in CPU_HARDWARE:
        return text
    lines = []
    for line in text.splitlines():
        match = re.match(r"^(\s*torch\s*==\s*)([^\s#;+]+)(\+\w+)?(.*)$", line)
        lines.append(f"{match.group(1)}{match.group(2)}+cpu{match.group(4)}" if match else line)
    header = [
        f"# CPU Space ({hardware}): PyTorch's CPU wheels, not PyPI's default CUDA torch (a multi-GB download).",
        "# Written by `dit-demo deploy-space`; this index cannot be reached from the project's test machines, so the",
        "# line is checked as text only. GPU hardware (`--hardware t4-small`, `zero-a10g`, ...) keeps the plain pin.",
        f"--extra-index-url {CPU_WHEEL_INDEX}",
    ]
    return "\n".join(header + lines) + "\n"


def default_model_code(info: ResolvedSource) -> tuple[str, Path | None]:
    """space_app.py's expression for the default model, and the local folder to ship (None for other sources)."""
    if not info.local:
        return repr(info.source), None
    folder = info.folder
    return f"str(Path(__file__).with_name({MODELS_DIR!r}) / {folder.name!r})", folder


def copy_model(folder: Path, target: Path) -> None:
    """A pipeline folder's loadable parts (and its dit_demo metadata): no samples, cards or leftovers."""
    target.mkdir(parents=True)
    for part in (*PIPELINE_PARTS, METADATA_NAME):
        path = folder / part
        if path.is_dir():
            shutil.copytree(path, target / part, ignore=IGNORE)
        elif path.is_file():
            shutil.copy2(path, target / part)


def stage_space(
    root: Path,
    out: Path,
    model: str | ResolvedSource,
    model_env: str,
    *,
    hardware: str = DEFAULT_HARDWARE,
    static: tuple[str, ...] = (),
    compile_cache: Path | None = None,
) -> None:
    """Write the Space folder atomically (complete or not at all). `static`: folders of `root` the app's tabs read;
    `compile_cache`: a `dit-demo compile-cache` file shipped as compile-cache/NAME.bin (+ NAME.json), which the
    ZeroGPU worker loads before it compiles."""
    missing = [name for name in (*REQUIRED_FILES, "dit_demo") if not (root / name).exists()]
    if missing:
        raise DemoError(f"{root} lacks {', '.join(missing)}: run this from the project checkout.")
    cache_files = () if compile_cache is None else (compile_cache, compile_cache.with_suffix(".json"))
    absent = [str(path) for path in cache_files if not path.is_file()]
    if absent:
        raise DemoError(f"--compile-cache: {', '.join(absent)} not found (`dit-demo compile-cache` writes both)")
    info = resolve_source(model)  # refuses a source string the app could not load (a resolved one passes as is)
    front, _ = read_front_matter(root / "README.md")
    code, local_model = default_model_code(info)
    with staging(out) as stage:
        folder = stage / "space"
        folder.mkdir()
        shutil.copy2(root / "app.py", folder / "app.py")
        requirements = (root / "requirements.txt").read_text(encoding="utf-8")
        (folder / "requirements.txt").write_text(space_requirements(requirements, hardware), encoding="utf-8")
        shutil.copytree(root / "dit_demo", folder / "dit_demo", ignore=IGNORE)
        for name in static:
            if (root / name).is_dir():
                shutil.copytree(root / name, folder / name, ignore=STATIC_IGNORE)
        if local_model is not None:
            copy_model(local_model, folder / MODELS_DIR / local_model.name)
        if cache_files:
            (folder / COMPILE_CACHE_DIR).mkdir()
            for path in cache_files:
                shutil.copy2(path, folder / COMPILE_CACHE_DIR / path.name)
        (folder / APP_FILE).write_text(SPACE_APP.format(env=model_env, model=code), encoding="utf-8")
        shown = f"{MODELS_DIR}/{local_model.name}" if local_model is not None else info.source
        shipped_cache = f"{COMPILE_CACHE_DIR}/{compile_cache.name}" if compile_cache is not None else ""
        space_card(front, shown, info.kind, model_env, hardware, shipped_cache).save(folder / "README.md")
        SpaceCard.load(folder / "README.md")  # the Hub must be able to parse what we wrote
        if out.exists():
            shutil.rmtree(out)
        folder.rename(out)


def deploy_space(
    root: Path,
    out: Path,
    target: Target,
    model: str,
    *,
    model_env: str,
    push: bool,
    hardware: str | None = None,
    static: tuple[str, ...] = (),
    compile_cache: Path | None = None,
) -> str:
    """Stage the Space folder at `out`; with `push`, set the model variable (and hardware) and upload it as one
    commit. Returns the default model as the Space names it."""
    check_repo_id(target.repo_id)
    if push:
        print(f"authenticated as {check_write_access(target)}", flush=True)
    info = resolve_source(model)  # once: staging and the Space variable read the same source
    stage_space(
        root, out, info, model_env, hardware=hardware or DEFAULT_HARDWARE, static=static, compile_cache=compile_cache
    )
    model = f"{MODELS_DIR}/{info.folder.name}" if info.local else info.source
    print(f"wrote {out} (default model {model})")
    shipped = info.local  # named relative to space_app.py: no variable (a relative path would depend on cwd)
    extra = [] if shipped else [f"and set the Space variable {model_env}={model} (Settings → Variables)"]
    if hardware:
        extra.append(f"and request hardware {hardware}")
    if not push:
        print(describe_push(out, target, extra))
        print("dry run: nothing uploaded. Rerun with --push to upload.")
        return model

    def configure(api) -> None:
        """Runs after the Space exists and before the upload: a failure here leaves no files uploaded."""
        if not shipped:
            api.add_space_variable(target.repo_id, model_env, model, description="default model of the demo")
        if hardware:
            api.request_space_hardware(target.repo_id, hardware)

    info = publish_folder(
        out, target, f"Deploy dit_demo Space (default model {model})", space_sdk="gradio", before_upload=configure
    )
    print(f"pushed: {info.commit_url}")
    return model
