"""Quantize a DiT, write a complete Hub repo folder (pipeline + measured model card + gallery), and with --push
upload it in one commit.

    python hub/push_quantized.py --model embedded --recipe int8 --repo-id USER/dit-digits-int8          # dry run
    python hub/push_quantized.py --model embedded --recipe int8 --repo-id USER/dit-digits-int8 --push   # upload

The dry run stops after writing the folder (inspect it; `--push` later reuses it unchanged). Every number in the
card is measured in the run that writes it and recorded in `measurements.json` next to the card.
"""

# ruff: noqa: E402  (the project root goes on sys.path before the project is imported)
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image, ImageDraw

from dit_demo.compare import compare
from dit_demo.engine.generate import build_reference, build_variant
from dit_demo.engine.labels import display_name, spread_ids
from dit_demo.engine.quantize import KEEP_GROUPS, RECIPES, REFERENCE_RECIPE, CalibrationConfig, get_recipe
from dit_demo.engine.request import SamplingRequest, seeds_for
from dit_demo.engine.serialization import save_pipeline, save_transformer, swap_in_folder
from dit_demo.engine.sources import QMAP_NAME, download_pipeline, resolve_source
from dit_demo.errors import DemoError
from dit_demo.hub_io import (
    EXIT_CONFLICT,
    HubError,
    Target,
    check_write_access,
    describe_push,
    fetch_card,
    publish_folder,
    resolve_token,
    run_cli,
)
from dit_demo.reports.card import (
    CardError,
    base_model_info,
    build_card,
    card_identity,
    machine_description,
    validate_card,
)

MEASUREMENTS_NAME = "measurements.json"
GALLERY_NAME = "gallery.png"
TILE = 128  # gallery tiles are upscaled (nearest) to at least this many pixels so 8x8-latent models are visible


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hub/push_quantized.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded", help="embedded | Hub id | folder | tiny-random | dit-xl-2-*")
    parser.add_argument("--recipe", default="int8", choices=[r for r in RECIPES if r != REFERENCE_RECIPE])
    parser.add_argument("--repo-id", required=True, help="USER/NAME of the model repo to create")
    parser.add_argument("--out", help="folder to write (default: out/hub/NAME)")
    parser.add_argument("--push", action="store_true", help="upload the folder (default: dry run, nothing uploaded)")
    parser.add_argument("--private", action="store_true")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--revision", help="push to this branch (created from main if missing)")
    where.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing to main")
    parser.add_argument(
        "--overwrite", action="store_true", help="rebuild an existing --out folder; replace a different card"
    )
    parser.add_argument("--labels", help="comma-separated class names or ids for the gallery (default: spread)")
    parser.add_argument("--seeds", help="comma-separated seeds, one per label, or one start seed (default: 0)")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=4.0)
    parser.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    parser.add_argument("--keep", action="append", default=[], choices=list(KEEP_GROUPS))
    parser.add_argument("--exclude", action="append", default=[], help="extra fnmatch pattern kept in full precision")
    parser.add_argument("--calibration-steps", type=int, default=25)
    parser.add_argument("--warmup", action="store_true", help="run each variant once before timing (GPU, compile)")
    return parser.parse_args(argv)


def reproduce_command(args: argparse.Namespace, labels: list[str], seeds: list[int]) -> str:
    """The command that rebuilds this repo (with --push), from the parsed arguments, not from the shell."""
    parts = ["python", "hub/push_quantized.py", "--model", args.model, "--recipe", args.recipe]
    parts += ["--repo-id", args.repo_id, "--labels", ",".join(labels), "--seeds", ",".join(map(str, seeds))]
    parts += ["--steps", str(args.steps), "--guidance", f"{args.guidance:g}"]
    parts += ["--calibration-steps", str(args.calibration_steps)]
    for group in args.keep:
        parts += ["--keep", group]
    for pattern in args.exclude:
        parts += ["--exclude", pattern]
    if args.device:
        parts += ["--device", args.device]
    return shlex.join(parts + ["--push"])


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def base_transformer_bytes(reference, info, tmp: Path) -> tuple[int, str]:
    """Measured size of the full-precision transformer checkpoint: the base's own files when it has them."""
    folder = None
    if info.kind in ("embedded", "folder"):
        folder = Path(info.path) / "transformer"
    elif info.kind == "hub":
        folder = download_pipeline(info.source) / "transformer"  # already in the cache: no new download
    if folder is not None and folder.is_dir() and not (folder / QMAP_NAME).exists():
        return folder_bytes(folder), "the base's transformer/ folder"
    save_transformer(reference.pipe.transformer, tmp / "base-transformer")  # random weights: save once, measure
    size = folder_bytes(tmp / "base-transformer")
    shutil.rmtree(tmp / "base-transformer", ignore_errors=True)
    return size, f"the reference transformer saved as safetensors ({reference.pipe.transformer.dtype})"


def gallery_image(rows: list[tuple[str, list[Image.Image]]], captions: list[str]) -> Image.Image:
    """A labelled grid: one row per variant, one column per class/seed, tiles upscaled with nearest pixels."""
    size = max(TILE, rows[0][1][0].width)
    left, top, pad = 110, 28, 6
    canvas = Image.new("RGB", (left + len(captions) * (size + pad), top + len(rows) * (size + pad)), "white")
    draw = ImageDraw.Draw(canvas)
    for col, caption in enumerate(captions):
        draw.text((left + col * (size + pad), 8), caption[:22], fill="black")
    for row, (name, images) in enumerate(rows):
        y = top + row * (size + pad)
        draw.text((6, y + size // 2 - 6), name, fill="black")
        for col, image in enumerate(images):
            canvas.paste(image.convert("RGB").resize((size, size), Image.NEAREST), (left + col * (size + pad), y))
    return canvas


def choose_request(args: argparse.Namespace, id2label: dict[int, str]) -> tuple[list[str | int], list[int]]:
    if args.labels:
        labels: list[str | int] = [item.strip() for item in args.labels.split(",") if item.strip()]
    else:
        labels = list(spread_ids(len(id2label), 4))
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [0]
    if len(seeds) == 1 and len(labels) > 1:
        seeds = seeds_for(seeds[0], len(labels))
    if len(seeds) != len(labels):
        raise DemoError(f"{len(seeds)} seeds for {len(labels)} labels: give one seed per label, or one start seed.")
    return labels, seeds


def build_repo_folder(args: argparse.Namespace, out: Path) -> dict:
    """Quantize, measure, and write the complete repo folder atomically; returns the measured record."""
    info = resolve_source(args.model)
    recipe = get_recipe(args.recipe)
    print(f"loading {info.source} ({info.kind}) …", flush=True)
    reference = build_reference(args.model, device=args.device)
    calibration = CalibrationConfig(steps=args.calibration_steps, guidance_scale=max(args.guidance, 1.0))
    note = recipe.build_note(reference.device)
    print(f"quantizing to {args.recipe} …" + (f" {note}" if note else ""), flush=True)
    variant = build_variant(reference, args.recipe, keep=args.keep, exclude=args.exclude, calibration=calibration)
    labels, seeds = choose_request(args, reference.id2label)
    print(f"generating {len(labels)} images per variant, {args.steps} steps …", flush=True)
    comparison = compare(
        {REFERENCE_RECIPE: reference, args.recipe: variant},
        SamplingRequest.create(
            labels,
            seeds=seeds,
            steps=args.steps,
            guidance_scale=args.guidance,
            warmup=args.warmup,
            max_batch=len(labels),
        ),
    )
    ref_result, quant_result = comparison.reference, comparison.results[args.recipe]
    names = [display_name(reference.id2label, i) for i in ref_result.class_ids]
    source_folder = info.path or (download_pipeline(info.source) if info.kind == "hub" else None)
    base = base_model_info(info.source, info.kind, source_folder)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    try:
        folder = save_pipeline(
            variant.pipe,
            stage / "repo",
            metadata={"recipe": args.recipe, "source": info.source, "report": variant.report.to_dict()},
        )
        base_bytes, base_how = base_transformer_bytes(reference, info, stage)
        samples = []
        (folder / "samples").mkdir()
        for i, (seed, class_id, name) in enumerate(zip(seeds, ref_result.class_ids, names)):
            for recipe_name, result in ((REFERENCE_RECIPE, ref_result), (args.recipe, quant_result)):
                file = f"samples/{recipe_name}-{i}-class{class_id}-seed{seed}.png"
                result.images[i].save(folder / file)
                if recipe_name == args.recipe:
                    samples.append({"file": file, "seed": seed, "class_id": class_id, "label": name})
        captions = [f"{name} / seed {seed}" for name, seed in zip(names, seeds)]
        gallery_image(
            [(f"{REFERENCE_RECIPE} (ref)", ref_result.images), (args.recipe, quant_result.images)], captions
        ).save(folder / GALLERY_NAME)
        measurements = {
            "repo_id": args.repo_id,
            "source": info.source,
            "source_kind": info.kind,
            "recipe": args.recipe,
            "recipe_description": recipe.description,
            "reference_recipe": REFERENCE_RECIPE,
            "base": {"base_model": base.base_model, "license": base.license, "description": base.description},
            "quantization": variant.report.to_dict(),
            "request": {
                "labels": names,
                "class_ids": ref_result.class_ids,
                "seeds": seeds,
                "steps": args.steps,
                "guidance_scale": args.guidance,
            },
            "rows": comparison.rows(),
            "sizes": {
                "transformer_checkpoint_bytes": folder_bytes(folder / "transformer"),
                "base_transformer_checkpoint_bytes": base_bytes,
                "base_transformer_checkpoint_measured_from": base_how,
                "repo_bytes": sum(folder_bytes(folder / d) for d in ("transformer", "vae", "scheduler"))
                + (folder / "model_index.json").stat().st_size,
            },
            "scheduler_class": type(variant.pipe.scheduler).__name__,
            "machine": machine_description(quant_result.device),
            "samples": samples,
            "command": reproduce_command(args, [str(x) for x in labels], seeds),
        }
        (folder / MEASUREMENTS_NAME).write_text(json.dumps(measurements, indent=2), encoding="utf-8")
        build_card(measurements).save(folder / "README.md")
        validate_card(folder / "README.md", measurements)
        swap_in_folder(folder, out)  # --overwrite: the old folder goes only once the new one is complete
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return measurements


def reusable(out: Path, args: argparse.Namespace) -> dict | None:
    """A folder written by an earlier (dry) run for the same repo, model and recipe, still valid: push it as is."""
    path = out / MEASUREMENTS_NAME
    if not path.is_file():
        return None
    try:
        measurements = json.loads(path.read_text(encoding="utf-8"))
        same = (measurements["repo_id"], measurements["source"], measurements["recipe"]) == (
            args.repo_id,
            resolve_source(args.model).source,
            args.recipe,
        )
        if same:
            validate_card(out / "README.md", measurements)
            return measurements
    except (KeyError, json.JSONDecodeError, CardError, DemoError):
        return None
    return None


def check_remote_card(target: Target, source: str, recipe: str, overwrite: bool) -> None:
    """Refuse to replace a card for a different model or recipe unless --overwrite."""
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


def run(args: argparse.Namespace) -> int:
    out = Path(args.out or Path("out") / "hub" / args.repo_id.split("/")[-1])
    source = resolve_source(args.model).source
    target = Target(
        repo_id=args.repo_id,
        revision=args.revision,
        create_pr=args.create_pr,
        private=args.private,
        token=resolve_token() if args.push else None,
    )
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(args.repo_id)
    except Exception as exc:
        raise DemoError(f"--repo-id {args.repo_id!r} is not a valid Hub repo id (USER/NAME): {exc}") from exc
    if args.repo_id.count("/") != 1:
        raise DemoError(f"--repo-id must be USER/NAME, got {args.repo_id!r}.")
    if args.push:  # fail before the slow part: token, access and an existing foreign card are checked first
        user = check_write_access(target)
        print(f"authenticated as {user}", flush=True)
        check_remote_card(target, source, args.recipe, args.overwrite)
    measurements = None if args.overwrite else reusable(out, args)
    if measurements is not None:
        print(f"reusing {out} (written by an earlier run for the same repo, model and recipe)")
    elif out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists and is not a folder for this repo/model/recipe; pass --overwrite.")
    else:
        measurements = build_repo_folder(args, out)
    quant = next(r for r in measurements["rows"] if r["recipe"] == args.recipe)
    print(
        f"{out}: transformer {measurements['sizes']['transformer_checkpoint_bytes']:,} B on disk "
        f"(base {measurements['sizes']['base_transformer_checkpoint_bytes']:,} B), "
        f"PSNR {quant['psnr_db']} dB, latency {quant['latency_s']:.3f} s on {quant['device']}"
    )
    if not args.push:
        print(describe_push(out, target))
        print("dry run: nothing uploaded. Rerun with --push to upload this folder as it is.")
        return 0
    info = publish_folder(out, target, f"Upload {args.recipe} quantized DiT ({source}) with dit_demo")
    print(f"pushed: {info.pr_url or info.commit_url}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
