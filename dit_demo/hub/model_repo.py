"""A quantized model repo: quantize, measure, write the complete folder (pipeline + measured card + gallery), push.

Every number in the card is measured in the run that writes it and recorded in `measurements.json` next to the
card. The folder is written atomically; a later run for the same repo, model and recipe reuses it unchanged, so a
dry run can be inspected and then pushed as is.

    spec = ModelRepoSpec(repo_id="USER/dit-digits-int8", model="embedded", recipe="int8")
    publish_model(spec, Path("out/hub/dit-digits-int8"), Target(spec.repo_id), push=False)   # dry run
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path

import torch

from dit_demo.compare import Comparison, compare
from dit_demo.engine.generate import Variant, build_reference, build_variant
from dit_demo.engine.machine import machine_description
from dit_demo.engine.model.folder_format import PIPELINE_PARTS, is_prequantized
from dit_demo.engine.model.folders import swap_in_folder
from dit_demo.engine.model.labels import display_name, spread_ids
from dit_demo.engine.model.resolver import ResolvedSource, resolve_source
from dit_demo.engine.model.serialization import save_pipeline, save_transformer
from dit_demo.engine.model.stock import is_stock_loadable
from dit_demo.engine.quant.quantize import CalibrationConfig
from dit_demo.engine.quant.recipes import REFERENCE_RECIPE, get_recipe
from dit_demo.engine.request import SamplingRequest, seeds_for
from dit_demo.engine.threads import use_threads
from dit_demo.errors import DemoError
from dit_demo.hub.card import (
    CPU_ALTERNATIVE,
    CardError,
    base_model_info,
    build_card,
    card_identity,
    validate_card,
)
from dit_demo.hub.card_text import SOURCE_PLACEHOLDER
from dit_demo.hub.io import (
    EXIT_CONFLICT,
    HubError,
    Target,
    check_repo_id,
    check_write_access,
    describe_push,
    fetch_card,
    folder_bytes,
    publish_folder,
    staging,
)
from dit_demo.reports.render import image_grid

MEASUREMENTS_NAME = "measurements.json"
GALLERY_NAME = "gallery.png"
MIN_TILE = 128  # gallery tiles are upscaled (whole multiples, nearest) to at least this so 16-px digits are visible
COMMAND = ["python", "-m", "dit_demo", "push-model"]  # the card's Reproduce command: works from a clone or a Space
STOCK_PACKAGES = ("torch", "diffusers", "optimum-quanto", "accelerate")  # what the card's stock/quanto snippets need
REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"  # the checkout's (or the Space's) pins


@dataclass
class ModelRepoSpec:
    """What a model repo is made from: the source, the recipe, how it is built and the sample request."""

    repo_id: str
    model: str = "embedded"
    recipe: str = "int8"
    labels: list[str | int] | None = None  # class names or ids; None: four classes spread over the label table
    seeds: list[int] | None = None  # one per label, or one start seed; None: 0
    steps: int = 25
    guidance: float = 4.0
    device: str | None = None
    keep: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    calibration_steps: int = 25
    warmup: bool = False
    timing_rounds: int = 3  # interleaved timed calls per variant behind the card's speed claim
    source_url: str | None = None  # the project's public source (the card links it); required to push
    _resolved: ResolvedSource | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def resolved(self) -> ResolvedSource:
        """`model` resolved once for this spec: every step of a publish reads the same source."""
        if self._resolved is None:
            self._resolved = resolve_source(self.model)
        return self._resolved

    def request(self, id2label: dict[int, str]) -> tuple[list[str | int], list[int]]:
        """The gallery's labels and one seed per label."""
        labels = list(self.labels) if self.labels else list(spread_ids(len(id2label), 4))
        seeds = list(self.seeds) if self.seeds else [0]
        if len(seeds) == 1 and len(labels) > 1:
            seeds = seeds_for(seeds[0], len(labels))
        if len(seeds) != len(labels):
            raise DemoError(f"{len(seeds)} seeds for {len(labels)} labels: give one seed per label, or one start seed.")
        return labels, seeds

    def reproduce_command(self, labels: list[str], seeds: list[int]) -> str:
        """The command that rebuilds this repo (with --push), from the spec, not from the shell; a local folder is
        named by its folder name only (no machine path is published)."""
        parts = [*COMMAND, "--model", self.resolved.name, "--recipe", self.recipe]
        parts += ["--repo-id", self.repo_id, "--labels", ",".join(labels), "--seeds", ",".join(map(str, seeds))]
        parts += ["--steps", str(self.steps), "--guidance", f"{self.guidance:g}"]
        parts += ["--calibration-steps", str(self.calibration_steps)]
        for group in self.keep:
            parts += ["--keep", group]
        for pattern in self.exclude:
            parts += ["--exclude", pattern]
        if self.device:
            parts += ["--device", self.device]
        parts += ["--source-url", self.source_url or SOURCE_PLACEHOLDER]
        return shlex.join(parts + ["--push"])


def tested_pins(names: tuple[str, ...] = STOCK_PACKAGES, requirements: Path = REQUIREMENTS) -> list[str]:
    """`name==version` as pinned in the project's requirements.txt (else as installed here): the card's install line."""
    pins = {}
    if requirements.is_file():
        for line in requirements.read_text(encoding="utf-8").splitlines():
            match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s#;]+)", line)
            if match:
                pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    out = []
    for name in names:
        version = pins.get(name) or importlib_metadata.version(name)
        out.append(f"{name}=={version.split('+')[0]}")  # 2.13.0+cpu: the pin, not this machine's build
    return out


@dataclass
class Measured:
    """One run's reference, variant and comparison on the gallery's request."""

    info: ResolvedSource  # the source as loaded (a Hub repo: with its snapshot folder)
    reference: Variant
    variant: Variant
    comparison: Comparison
    labels: list[str | int]
    seeds: list[int]

    @property
    def names(self) -> list[str]:
        return [display_name(self.reference.id2label, i) for i in self.comparison.reference.class_ids]


def measure(spec: ModelRepoSpec) -> Measured:
    """Load, quantize and generate the gallery with the reference and the recipe (printing progress)."""
    recipe = get_recipe(spec.recipe)
    print(f"loading {spec.resolved.name} ({spec.resolved.kind}) …", flush=True)
    reference = build_reference(spec.resolved, device=spec.device)
    calibration = CalibrationConfig(steps=spec.calibration_steps, guidance_scale=max(spec.guidance, 1.0))
    note = recipe.build_note(reference.device)
    print(f"quantizing to {spec.recipe} …" + (f" {note}" if note else ""), flush=True)
    with use_threads(torch.get_num_threads()):  # as the card's snippet runs: see below
        variant = build_variant(reference, spec.recipe, keep=spec.keep, exclude=spec.exclude, calibration=calibration)
    labels, seeds = spec.request(reference.id2label)
    print(f"generating {len(labels)} images per variant, {spec.steps} steps …", flush=True)
    request = SamplingRequest.create(
        labels, seeds=seeds, steps=spec.steps, guidance_scale=spec.guidance, warmup=spec.warmup, max_batch=len(labels)
    )
    # torch's default thread count, not the engine's small-model policy: the card's stock-diffusers snippet runs with
    # the default and promises the same pixels (CPU float sums depend on how the work is split across threads)
    variants = {REFERENCE_RECIPE: reference, spec.recipe: variant}
    alternative = cpu_alternative(variant)
    if alternative is not None:
        print(f"also timing {alternative.recipe}, rebuilt from these int8 weights (it runs here) …", flush=True)
        variants[alternative.recipe] = alternative
    with use_threads(torch.get_num_threads()):
        comparison = compare(variants, request, rounds=spec.timing_rounds)
    return Measured(reference.resolved, reference, variant, comparison, labels, seeds)


def cpu_alternative(variant: Variant) -> Variant | None:
    """`int8-dynamic` rebuilt from a weight-only int8 repo's own weights, where it runs (a CPU): what a CPU user of
    this repo can pick instead, measured beside it (interleaved) so the card can say whether it pays."""
    if variant.recipe != "int8" or not get_recipe(CPU_ALTERNATIVE).runs_here(variant.device):
        return None
    return build_variant(variant, CPU_ALTERNATIVE)


def pipeline_bytes(folder: Path) -> int:
    """Bytes of a pipeline folder's loadable parts (model_index.json, transformer/, vae/, scheduler/)."""
    return sum(
        folder_bytes(folder / p) if (folder / p).is_dir() else (folder / p).stat().st_size for p in PIPELINE_PARTS
    )


def base_transformer_bytes(reference: Variant, info: ResolvedSource, tmp: Path) -> tuple[int, str]:
    """Measured size of the full-precision transformer checkpoint: the base's own files when it has them."""
    base = info.folder  # the base's own folder (a Hub snapshot is already in the cache: no new download)
    folder = base / "transformer" if base is not None else None
    if folder is not None and folder.is_dir() and not is_prequantized(base):
        return folder_bytes(folder), "the base's transformer/ folder"
    save_transformer(reference.pipe.transformer, tmp / "base-transformer")  # random weights: save once, measure
    return folder_bytes(tmp / "base-transformer"), (
        f"the reference transformer saved as safetensors ({reference.pipe.transformer.dtype})"
    )


def write_samples(folder: Path, spec: ModelRepoSpec, run: Measured) -> list[dict]:
    """samples/*.png (both variants) and gallery.png (reference row over recipe row); the recipe's sample list."""
    ref_result, quant_result = run.comparison.reference, run.comparison.results[spec.recipe]
    samples = []
    (folder / "samples").mkdir()
    for i, (seed, class_id, name) in enumerate(zip(run.seeds, ref_result.class_ids, run.names)):
        for recipe_name, result in (("reference", ref_result), (spec.recipe, quant_result)):
            file = f"samples/{recipe_name}-{i}-class{class_id}-seed{seed}.png"
            result.images[i].save(folder / file)
            if recipe_name == spec.recipe:
                samples.append({"file": file, "seed": seed, "class_id": class_id, "label": name})
    image_grid(
        [ref_result.images, quant_result.images],
        row_labels=[f"reference ({ref_result.dtype})", spec.recipe],
        col_labels=[f"{name} / seed {seed}" for name, seed in zip(run.names, run.seeds)],
        min_tile=MIN_TILE,
    ).save(folder / GALLERY_NAME)
    return samples


def measurements_record(
    spec: ModelRepoSpec, run: Measured, folder: Path, base: tuple[int, str], samples: list[dict]
) -> dict:
    """Every number the card shows, as measured (written to measurements.json)."""
    info, quant_result = run.info, run.comparison.results[spec.recipe]
    source_folder = info.folder
    base_info = base_model_info(info.source, info.kind, source_folder)
    config = json.loads((folder / "transformer" / "config.json").read_text(encoding="utf-8"))
    quant_method = str((config.get("quantization_config") or {}).get("quant_method", ""))
    refusal = re.search(r"holds (.*?), which stock diffusers", quant_method)
    return {
        "repo_id": spec.repo_id,
        "source": info.name,
        "source_url": spec.source_url,
        "source_kind": info.kind,
        "recipe": spec.recipe,
        "recipe_description": get_recipe(spec.recipe).description,
        "reference_recipe": REFERENCE_RECIPE,
        "base": {
            "base_model": base_info.base_model,
            "license": base_info.license,
            "description": base_info.description,
        },
        "quantization": run.variant.report.to_dict(),
        "request": {
            "labels": run.names,
            "class_ids": run.comparison.reference.class_ids,
            "seeds": run.seeds,
            "steps": spec.steps,
            "guidance_scale": spec.guidance,
        },
        "rows": [{**row, "source": info.name} for row in run.comparison.rows()],
        "sizes": {
            "transformer_checkpoint_bytes": folder_bytes(folder / "transformer"),
            "base_transformer_checkpoint_bytes": base[0],
            "base_transformer_checkpoint_measured_from": base[1],
            "repo_bytes": pipeline_bytes(folder),
            "base_repo_bytes": pipeline_bytes(source_folder) if source_folder is not None else None,
        },
        "stock": {"loadable": is_stock_loadable(config), "refusal": refusal.group(1) if refusal else None},
        "install": {"packages": tested_pins()},
        "scheduler_class": type(run.variant.pipe.scheduler).__name__,
        "machine": machine_description(quant_result.device),
        "samples": samples,
        "command": spec.reproduce_command([str(x) for x in run.labels], run.seeds),
    }


def build_repo_folder(spec: ModelRepoSpec, out: Path) -> dict:
    """Quantize, measure, and write the complete repo folder atomically; returns the measured record."""
    run = measure(spec)
    with staging(out) as stage:
        metadata = {"recipe": spec.recipe, "source": run.info.name, "report": run.variant.report.to_dict()}
        storage = run.reference.storage_dtype  # kept tensors and the VAE as the base stores them, never upcast
        folder = save_pipeline(run.variant.pipe, stage / "repo", metadata=metadata, storage_dtype=storage)
        base = base_transformer_bytes(run.reference, run.info, stage)
        samples = write_samples(folder, spec, run)
        measurements = measurements_record(spec, run, folder, base, samples)
        (folder / MEASUREMENTS_NAME).write_text(json.dumps(measurements, indent=2), encoding="utf-8")
        build_card(measurements).save(folder / "README.md")
        validate_card(folder / "README.md", measurements)
        swap_in_folder(folder, out)  # --overwrite: the old folder goes only once the new one is complete
    return measurements


def reusable(out: Path, spec: ModelRepoSpec) -> dict | None:
    """A folder written by an earlier (dry) run for the same repo, model and recipe, still valid: push it as is.

    Only the card depends on `--source-url`: a different one re-renders the card from the same measurements."""
    path = out / MEASUREMENTS_NAME
    if not path.is_file():
        return None
    try:
        measurements = json.loads(path.read_text(encoding="utf-8"))
        wanted = (spec.repo_id, spec.resolved.name, spec.recipe)
        if (measurements["repo_id"], measurements["source"], measurements["recipe"]) == wanted:
            if spec.source_url and measurements.get("source_url") != spec.source_url:
                measurements = relink(out, measurements, spec)
            validate_card(out / "README.md", measurements)
            return measurements
    except (KeyError, json.JSONDecodeError, CardError, DemoError):
        return None
    return None


def relink(out: Path, measurements: dict, spec: ModelRepoSpec) -> dict:
    """The same measurements with a new source URL: measurements.json, the command and the card rewritten."""
    command = shlex.split(measurements["command"])
    command[command.index("--source-url") + 1] = spec.source_url
    measurements = {**measurements, "source_url": spec.source_url, "command": shlex.join(command)}
    for name, text in (
        (MEASUREMENTS_NAME, json.dumps(measurements, indent=2)),
        ("README.md", str(build_card(measurements))),
    ):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out / name)
    return measurements


def check_remote_card(target: Target, source: str, recipe: str, overwrite: bool) -> None:
    """Refuse to replace a card for a different model or recipe unless `overwrite`."""
    existing = fetch_card(target)
    if existing is None:
        return
    identity = card_identity(existing)
    if identity is not None and (identity.get("source"), identity.get("recipe")) == (source, recipe):
        return
    what = f"{identity.get('source')} / {identity.get('recipe')}" if identity else "a model not made by dit_demo"
    if not overwrite:
        raise HubError(
            f"{target.repo_id} already has a card for {what}, not {source} / {recipe}. Choose another --repo-id, "
            "or pass --overwrite to replace its files.",
            EXIT_CONFLICT,
        )
    print(f"warning: replacing {target.repo_id}'s card for {what} (--overwrite)", file=sys.stderr)


def publish_model(spec: ModelRepoSpec, out: Path, target: Target, *, push: bool, overwrite: bool = False) -> dict:
    """Write (or reuse) the repo folder at `out`; with `push`, upload it as one commit to `target`.

    With `push`, the token, the write access and an existing foreign card are checked before the slow part.
    Returns the measurements."""
    check_repo_id(spec.repo_id)
    source = spec.resolved.name
    if push and not spec.source_url:
        raise DemoError(
            "--push needs --source-url: the public URL of this project's source (a git repo or your Space, e.g. "
            "https://huggingface.co/spaces/USER/dit-quanto-demo), which the card's snippets and Reproduce command use."
        )
    if push:
        print(f"authenticated as {check_write_access(target)}", flush=True)
        check_remote_card(target, source, spec.recipe, overwrite)
    measurements = None if overwrite else reusable(out, spec)
    if measurements is not None:
        print(f"reusing {out} (written by an earlier run for the same repo, model and recipe)")
    elif out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists and is not a folder for this repo/model/recipe; pass --overwrite.")
    else:
        measurements = build_repo_folder(spec, out)
    quant = next(r for r in measurements["rows"] if r["recipe"] == spec.recipe)
    sizes = measurements["sizes"]
    print(
        f"{out}: transformer {sizes['transformer_checkpoint_bytes']:,} B on disk "
        f"(base {sizes['base_transformer_checkpoint_bytes']:,} B), "
        f"PSNR {quant['psnr_db']} dB, latency {quant['latency_s']:.3f} s on {quant['device']}"
    )
    if not push:
        print(describe_push(out, target))
        print("dry run: nothing uploaded. Rerun with --push to upload this folder as it is.")
        return measurements
    info = publish_folder(out, target, f"Upload {spec.recipe} quantized DiT ({source}) with dit_demo")
    print(f"pushed: {info.pr_url or info.commit_url}")
    return measurements
