"""DiT × optimum-quanto demo: the Gradio front door, locally (`python app.py [--model SOURCE]`) and as a Space.

Layout and event wiring only; handlers, defaults and formatting live in `dit_demo.app` (offered sources, input
checks, the service, views, tabs), so the same code serves the page and the `/generate` API endpoint and can be
tested without a browser.

`demo` is a module attribute built on first access (`from app import demo`, `gradio app.py`), so
`python app.py --help` answers without importing torch or gradio.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING

from dit_demo.app import config

if TYPE_CHECKING:
    import gradio as gr

    from dit_demo.app.service import DemoService


def _model_controls(model: str) -> SimpleNamespace:
    """Model, classes, seed and sampling settings (the left column)."""
    import gradio as gr

    from dit_demo.app import offered
    from dit_demo.engine.request import DEFAULT_GUIDANCE, DEFAULT_STEPS
    from dit_demo.engine.sources import SCHEDULERS

    c = SimpleNamespace()
    c.model = gr.Dropdown(
        choices=offered.model_choices(model),
        value=model,
        allow_custom_value=True,
        label="Model",
        info="embedded digits, a Hub id (facebook/DiT-XL-2-256, a pre-quantized repo) or a folder",
        elem_id="model",
    )
    c.model_note = gr.Markdown(offered.model_note(model))
    c.classes = gr.Dropdown(
        choices=offered.class_choices(model),
        value=offered.default_classes(model),
        multiselect=True,
        allow_custom_value=True,
        label="Classes (type to search; one image per class)",
        elem_id="classes",
    )
    with gr.Row():
        c.seed = gr.Number(value=0, precision=0, label="Seed", elem_id="seed")
        c.randomize = gr.Checkbox(value=False, label="Randomize seed")
    c.steps = gr.Slider(1, config.UI_MAX_STEPS, value=DEFAULT_STEPS, step=1, label="Steps")
    c.guidance = gr.Slider(1, config.UI_MAX_GUIDANCE, value=DEFAULT_GUIDANCE, step=0.5, label="Guidance scale")
    c.scheduler = gr.Dropdown(choices=list(SCHEDULERS), value="dpm", label="Scheduler")
    return c


def _recipe_controls(c: SimpleNamespace) -> None:
    """Recipes, the optional compile path, Generate and Download (end of the left column)."""
    import gradio as gr

    from dit_demo.app import offered
    from dit_demo.app.service import fast_compile_available
    from dit_demo.engine.quantize import REFERENCE_RECIPE

    c.recipes = gr.CheckboxGroup(
        choices=offered.COMPARE_RECIPES,
        value=config.DEFAULT_RECIPES,
        label=f"Recipes to compare ({REFERENCE_RECIPE} is always the reference)",
    )
    c.compile_gpu = gr.Checkbox(
        value=False,
        label="compile (GPU): torch.compile / CUDA graphs, warm-up reported separately",
        visible=fast_compile_available(),
    )
    c.run = gr.Button("Generate", variant="primary", elem_id="generate")
    c.download = gr.DownloadButton("Download comparison (PNG)", elem_id="download")


def _result_views() -> SimpleNamespace:
    """Summary, images, difference, table, chart and raw numbers (the right column)."""
    import gradio as gr

    from dit_demo.app.views import table_headers

    r = SimpleNamespace()
    r.summary = gr.Markdown(elem_id="summary")
    r.gallery = gr.Gallery(
        label="Same seed: reference and each recipe",
        format="png",
        columns=2,
        object_fit="contain",
        height=360,
        elem_id="gallery",
    )
    with gr.Row():
        r.slider = gr.ImageSlider(
            label="Reference ↔ first quantized recipe", format="png", type="pil", elem_id="slider"
        )
        r.diff = gr.Image(label=f"Amplified difference (×{config.DIFF_GAIN:g})", format="png", elem_id="diff")
    r.table = gr.Dataframe(headers=table_headers(), label="Numbers per recipe", elem_id="table", wrap=True)
    r.chart = gr.ScatterPlot(
        x="latency_s",
        y="weights_mib",
        color="recipe",
        x_title="end-to-end latency (s)",
        y_title="transformer weights (MiB)",
        label="Latency vs memory",
        height=260,
    )
    r.numbers = gr.JSON(label="All numbers (what /generate returns)", elem_id="numbers")
    return r


def _compare_tab(model: str) -> tuple[SimpleNamespace, SimpleNamespace]:
    import gradio as gr

    from dit_demo.app.offered import example_rows

    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            controls = _model_controls(model)
            _recipe_controls(controls)
        with gr.Column(scale=2):
            results = _result_views()
    c = controls
    gr.Examples(
        examples=example_rows(model),
        inputs=[c.classes, c.seed, c.steps, c.guidance, c.recipes],
        cache_examples=False,
        label="Examples",
    )
    return controls, results


def _static_tabs() -> None:
    """The pre-computed gallery and, where this checkout has it, the GPU benchmark."""
    import gradio as gr

    from dit_demo.app import tabs

    with gr.Tab("Pre-computed gallery"):
        for name in tabs.GALLERY_PICTURES:
            picture = tabs.gallery_grid(name=name)
            if picture:
                gr.Image(value=picture, label=name, format="png", elem_id=f"precomputed-{name[:-4]}")
        gr.Markdown(tabs.gallery_markdown())
    bench = tabs.bench_markdown()
    if bench:
        with gr.Tab("GPU benchmark"):
            gr.Markdown(bench)


def _wire(service: DemoService, c: SimpleNamespace, r: SimpleNamespace, state) -> None:
    """Model change → class list; Generate → `/generate` (the one public endpoint) → follow-up views."""
    from dit_demo.app.offered import on_model_change
    from dit_demo.app.views import views

    c.model.change(on_model_change, c.model, [c.classes, c.model_note], api_visibility="private")
    c.run.click(
        service.generate,
        inputs=[c.model, c.classes, c.seed, c.randomize, c.steps, c.guidance, c.scheduler, c.recipes, c.compile_gpu],
        outputs=[r.gallery, r.numbers, r.summary, c.download, state],
        api_name="generate",
        concurrency_limit=1,
    ).success(views, state, [r.slider, r.diff, r.table, r.chart, r.gallery], api_visibility="private")


def build_demo(
    default_model: str | None = None, service: DemoService | None = None, *, queue_size: int | None = None
) -> gr.Blocks:
    """The whole app for one default model; cheap (no weights are loaded until the first request)."""
    import gradio as gr

    from dit_demo.app import tabs
    from dit_demo.app.service import DemoService

    service = service or DemoService(default_model)
    with gr.Blocks(title=tabs.TITLE, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(tabs.INTRO)
        state = gr.State()
        with gr.Tab("Compare"):
            controls, results = _compare_tab(service.default_model)
        _static_tabs()
        _wire(service, controls, results, state)
    demo.queue(default_concurrency_limit=1, max_size=queue_size or config.queue_size())
    demo.service = service  # tests and the launcher reach the cache through the app
    return demo


def __getattr__(name: str):
    """`demo`, built on first access with the environment's settings (PEP 562), then kept as a global."""
    if name == "demo":
        globals()["demo"] = built = build_demo()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="Serve the DiT × optimum-quanto comparison (page and /generate API) with Gradio.",
        epilog=f"Environment: {config.MODEL_ENV}, {config.QUEUE_SIZE_ENV}, {config.MAX_VARIANTS_ENV}, "
        f"{config.CPU_THREADS_ENV}, DIT_DEMO_MAX_BATCH; GRADIO_SERVER_NAME / GRADIO_SERVER_PORT when --host / "
        "--port are not given.",
    )
    parser.add_argument(
        "--model",
        help=f"default model: 'embedded', a Hub id or a pipeline folder (default: ${config.MODEL_ENV}, else the "
        f"embedded digits model, else {config.FALLBACK_MODEL})",
    )
    parser.add_argument("--host", help="address to listen on (default: Gradio's, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: Gradio's, 7860 or the next free one)")
    parser.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    parser.add_argument(
        "--queue-size",
        type=int,
        help=f"requests waiting in the queue (default: ${config.QUEUE_SIZE_ENV} or {config.DEFAULT_QUEUE_SIZE})",
    )
    parser.add_argument(
        "--max-variants",
        type=int,
        help=f"built variants kept in memory (default: ${config.MAX_VARIANTS_ENV} or {config.DEFAULT_MAX_VARIANTS})",
    )
    parser.add_argument(
        "--no-preload", action="store_true", help="do not load the default model before the first request"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the flags, build `demo` (kept as this module's global, which `gradio app.py` reloads) and serve it."""
    global demo
    args = build_parser().parse_args(argv)
    from dit_demo.app.service import DemoService
    from dit_demo.app.views import launch_kwargs

    service = DemoService(args.model, max_variants=args.max_variants)
    demo = build_demo(service=service, queue_size=args.queue_size)
    if not args.no_preload and not os.environ.get("GRADIO_WATCH_DIRS"):  # not again on every hot reload
        service.start_preload()
    options = {"server_name": args.host, "server_port": args.port, "share": True if args.share else None}
    demo.launch(**{k: v for k, v in options.items() if v is not None}, **launch_kwargs())


if __name__ == "__main__":
    main()
