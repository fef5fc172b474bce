"""Comparison galleries: the same classes and seeds through every recipe, side by side, with the numbers.

    from dit_demo.reports.gallery import GalleryConfig, run_gallery, write_gallery
    gallery = run_gallery(GalleryConfig(source="embedded", recipes=["bf16", "int8"], seeds=[0, 1]))
    write_gallery(gallery, "gallery/embedded")   # gallery is None on processes other than the main one

Modules by concept: `config` (what is asked, what is gathered), `planning` (recipes, classes, jobs, batches,
shown rows), `running` (Accelerate state, each process's share, gathering), `assembling` (records → per-recipe
and per-image rows, scored by `dit_demo.compare`), `checkpoint` (measured checkpoint size), `pages` (Markdown and
HTML), `writing` (the folder). The command line is `dit_demo.cli.gallery` (`dit-demo gallery`).
"""

from dit_demo.reports.gallery.assembling import assemble
from dit_demo.reports.gallery.checkpoint import checkpoint_bytes
from dit_demo.reports.gallery.config import DEFAULT_RECIPES, Gallery, GalleryConfig
from dit_demo.reports.gallery.pages import metric_columns, metrics_table, render_html, render_markdown
from dit_demo.reports.gallery.planning import default_labels, ordered_recipes, plan_batches, plan_jobs, shown_rows
from dit_demo.reports.gallery.running import build_variants, gather, generate_share, make_state, run_gallery
from dit_demo.reports.gallery.writing import write_gallery

__all__ = [
    "DEFAULT_RECIPES",
    "Gallery",
    "GalleryConfig",
    "assemble",
    "build_variants",
    "checkpoint_bytes",
    "default_labels",
    "gather",
    "generate_share",
    "make_state",
    "metric_columns",
    "metrics_table",
    "ordered_recipes",
    "plan_batches",
    "plan_jobs",
    "render_html",
    "render_markdown",
    "run_gallery",
    "shown_rows",
    "write_gallery",
]
