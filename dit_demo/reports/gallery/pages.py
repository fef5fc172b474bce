"""The gallery's pages: the metrics columns, results.md (Markdown) and index.html (self-contained, sortable)."""

from __future__ import annotations

import html
from pathlib import Path

from dit_demo.reports.gallery.config import Gallery
from dit_demo.reports.gallery.planning import shown_rows
from dit_demo.reports.tables import html_page, html_table, markdown_table

# Columns of the metrics table: metric keys (headers and formats from `dit_demo.metrics`).
METRIC_COLUMNS: list[str] = [
    "latency_s",
    "latency_median_s",
    "per_step_s",
    "latency_per_image_s",
    "images_per_s",
    "peak_memory_bytes",
    "weight_bytes",
    "checkpoint_bytes",
    "psnr_db",
    "ssim",
]
DIGIT_COLUMNS: list[str] = ["digit_accuracy", "fid"]


def metric_columns(digits: bool) -> list:
    return [("recipe", "recipe"), *METRIC_COLUMNS, *(DIGIT_COLUMNS if digits else [])]


SHORT_DTYPES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def recipe_label(gallery: Gallery, recipe: str) -> str:
    """A column's name in pictures: the reference by the dtype it really ran in (fp32 on a CPU), not "bf16"."""
    if recipe != gallery.reference:
        return recipe
    dtype = gallery.recipe_rows.get(recipe, {}).get("dtype", "")
    return f"{SHORT_DTYPES.get(dtype, dtype or recipe)} reference"


def metrics_table(gallery: Gallery) -> str:
    """The per-recipe Markdown table (also what the command line prints)."""
    return markdown_table(list(gallery.recipe_rows.values()), metric_columns(gallery.digits))


def summary(gallery: Gallery) -> tuple[str, str]:
    """(what was run, where it ran) in one line each."""
    c, env = gallery.config, gallery.environment
    classes = ", ".join(dict.fromkeys(j["class_name"] for j in gallery.jobs))
    seeds = ", ".join(str(s) for s in c.seeds)
    what = (
        f"source {c.source}; {len(gallery.jobs)} images per recipe (classes {classes}; seeds {seeds}); "
        f"{c.steps} steps, guidance {c.guidance_scale:g}, batch {c.batch_size}" + ("" if c.warmup else ", no warm-up")
    )
    where = (
        f"{env['machine']}; {gallery.num_processes} process(es), {env['torch_num_threads']} torch thread(s) each; "
        f"torch {env['torch']}, diffusers {env['diffusers']}, optimum-quanto {env['optimum_quanto']}, "
        f"accelerate {env['accelerate']}; {env['date']}"
    )
    load = env.get("load_average")
    if load and None not in load:
        where += f"; load average {load[0]:g} → {load[1]:g} (1 min, {env.get('cpu_count')} cores) while timing"
    return what, where


def notes(gallery: Gallery) -> list[str]:
    """What the numbers mean, and warnings where they are fragile (disturbed timings, small-sample FID)."""
    ref_row = gallery.recipe_rows[gallery.reference]
    out = [
        f"Reference: `{gallery.reference}` ({ref_row['dtype']} on {ref_row['device']}). PSNR/SSIM compare each "
        "image with the reference's image of the same class and seed; a missing PSNR means identical images.",
        f"Latency: mean (and median) wall time of one batch (up to {gallery.config.batch_size} images, CFG doubles "
        "the rows), warm-up excluded, recipes interleaved batch by batch; per step = denoising time / steps; "
        "images/s = images / the slowest process's time on that recipe (top line: all images / slowest process's "
        "wall time).",
        f"Peak memory: {ref_row['memory_kind']} (on CPU the whole process, all loaded variants included).",
        "Checkpoint: measured bytes of the saved transformer folder (safetensors + config + quanto map).",
    ]
    unsaved = [r for r, row in gallery.recipe_rows.items() if row.get("checkpoint_bytes") is None]
    if unsaved:
        out.append(
            f"No checkpoint for {', '.join(unsaved)}: never saved (its packed int8 weights have no safetensors form); "
            "it is rebuilt in seconds at load time from the full-precision model or a saved int8 folder."
        )
    disturbed = [r for r, row in gallery.recipe_rows.items() if row["latency_s"] > 1.5 * row["latency_median_s"] > 0]
    if disturbed:
        out.append(
            f"Timing warning: for {', '.join(disturbed)} the mean batch latency exceeds 1.5× the median — some "
            "batches were slowed by other load on the machine; the median is the better estimate here."
        )
    if gallery.digits:
        out += _digit_notes(ref_row)
    return out


def _digit_notes(ref_row: dict) -> list[str]:
    n = ref_row.get("fid_num_images")
    out = [
        f"Class accuracy: the shipped digit classifier's verdict. FID: classifier-feature Fréchet distance of "
        f"the {n} generated images per recipe against {ref_row.get('fid_reference')}; it depends on the "
        "sample count — compare only runs of the same size (ask for more with --per-class N)."
    ]
    dim = ref_row.get("fid_feature_dim") or 0
    if n is not None and n <= dim:
        out.append(
            f"FID warning: {n} images per recipe are not more than the judge's {dim} features, so the feature "
            "covariance is singular and FID is ill-conditioned (indicative only; use more images)."
        )
    return out


PROCESS_COLUMNS = [
    ("process_index", "process"),
    ("device", "device"),
    ("images", "images"),
    ("wall_s", "wall s"),
    ("images_per_s", "images/s"),
]


def render_markdown(gallery: Gallery, paths: dict[str, Path]) -> str:
    what, where = summary(gallery)
    lines = [
        "# Quantization gallery",
        "",
        f"**Machine:** {where}",
        "",
        f"**Run:** {what}",
        "",
        metrics_table(gallery),
        *[f"- {note}" for note in notes(gallery)],
        "",
    ]
    if gallery.num_processes > 1:
        lines += [
            f"Processes: {gallery.num_processes}, aggregate {gallery.images_per_s} images/s.",
            "",
            markdown_table(gallery.processes, PROCESS_COLUMNS),
        ]
    lines += [f"![grid]({paths['grid'].name})", ""]
    if "diff_grid" in paths:
        lines += [f"![differences]({paths['diff_grid'].name})", ""]
    if "chart" in paths:
        lines += [f"![latency vs weights]({paths['chart'].name})", ""]
    return "\n".join(lines)


PAGE_STYLE = """
.images td { text-align: center; vertical-align: top; font-size: 12px; }
.images img { image-rendering: pixelated; display: block; margin: 0 auto 2px; }
.pair { display: inline-block; margin: 0 2px; }
.bad { color: #b00; font-weight: bold; }
"""


def render_html(gallery: Gallery, paths: dict[str, Path], tile: int) -> str:
    """The self-contained page: summary, sortable metrics table, chart, and every shown image with its diff."""
    what, where = summary(gallery)
    esc = html.escape
    parts = [
        "<h1>Quantization gallery</h1>",
        f"<p><b>Machine:</b> {esc(where)}</p>",
        f"<p><b>Run:</b> {esc(what)}</p>",
        "<h2>Metrics per recipe</h2><p>Click a column header to sort.</p>",
        html_table(list(gallery.recipe_rows.values()), metric_columns(gallery.digits), table_id="metrics"),
        "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes(gallery)) + "</ul>",
    ]
    if "chart" in paths:
        parts.append(f'<p><img src="{paths["chart"].name}" alt="latency vs transformer weights"></p>')
    shown = shown_rows(gallery.jobs, gallery.config.max_rows_shown)
    parts.append(
        f"<h2>Images</h2><p>{len(shown)} of {len(gallery.jobs)} rows shown; under each image: PSNR/SSIM vs the "
        f"{esc(recipe_label(gallery, gallery.reference))}"
        + (" and the judge's digit" if gallery.digits else "")
        + f"; right: |difference| × {gallery.config.gain:g}. Also as "
        f'<a href="{paths["grid"].name}">one grid</a>'
        + (f' and <a href="{paths["diff_grid"].name}">a difference grid</a>' if "diff_grid" in paths else "")
        + ".</p>"
    )
    parts.append(image_table(gallery, shown, tile))
    parts.append('<p>Raw numbers: <a href="results.json">results.json</a>, <a href="results.md">results.md</a>.</p>')
    return html_page("Quantization gallery", "\n".join(parts), style=PAGE_STYLE)


def image_table(gallery: Gallery, shown: list[dict], tile: int) -> str:
    """One row per shown job: its label, then per recipe the image, its difference and a caption."""
    head = "".join(f"<th>{html.escape(recipe_label(gallery, r))}</th>" for r in gallery.recipes)
    body = []
    for job in shown:
        row = gallery.image_rows[job["row"]]
        cells = "".join(_image_cell(gallery, row, recipe, tile) for recipe in gallery.recipes)
        label = f"{html.escape(row['class_name'])}<br>seed {row['seed']}"
        body.append(f'<tr><td data-sort="{row["row"]}">{label}</td>{cells}</tr>')
    return (
        '<table class="sortable images"><thead><tr><th>class · seed</th>'
        + head
        + "</tr></thead><tbody>\n"
        + "\n".join(body)
        + "\n</tbody></table>"
    )


def _image_cell(gallery: Gallery, row: dict, recipe: str, tile: int) -> str:
    entry = row["recipes"][recipe]
    value = entry["psnr_db"]
    sort = "" if value is None else repr(value)
    if recipe == gallery.reference:
        caption = "reference"
    else:
        caption = ("identical" if value is None else f"{value:.1f} dB") + f" · {entry['ssim']:.4f}"
    if "predicted_digit" in entry:
        ok = entry["predicted_digit"] == row["class_id"]
        caption += f'<br><span class="{"" if ok else "bad"}">→ {entry["predicted_digit"]}</span>'
    imgs = f'<span class="pair"><img src="{entry["image"]}" width="{tile}" alt="{html.escape(recipe)}"></span>'
    if "diff" in entry:
        imgs += f'<span class="pair"><img src="{entry["diff"]}" width="{tile}" alt="difference"></span>'
    return f'<td data-sort="{sort}">{imgs}{caption}</td>'
