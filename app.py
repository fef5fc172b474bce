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
    from dit_demo.app.startup import StartingService


def _model_controls(model: str, limits: config.Limits) -> SimpleNamespace:
    """Model, classes, seed and sampling settings (the left column)."""
    import gradio as gr

    from dit_demo.app import offered
    from dit_demo.engine.model.names import SCHEDULER_NAMES
    from dit_demo.engine.request import DEFAULT_GUIDANCE, DEFAULT_STEPS

    c = SimpleNamespace()
    hosted = limits.allowed_models is not None
    c.model = gr.Dropdown(
        choices=list(limits.allowed_models) if hosted else offered.model_choices(model),
        value=model,
        allow_custom_value=not hosted,
        label="Model",
        info="the models this server offers"
        if hosted
        else "mnist or embedded (the shipped digit models), a Hub id (facebook/DiT-XL-2-256) or a folder",
        elem_id="model",
    )
    c.model_note = gr.Markdown(offered.model_note(model))
    c.classes = gr.Dropdown(
        choices=offered.class_choices(model),
        value=offered.default_classes(model),
        multiselect=True,
        allow_custom_value=True,
        label="Classes",
        info="type to search; one image per class",
        elem_id="classes",
    )
    with gr.Row():
        c.seed = gr.Number(value=0, precision=0, label="Seed", elem_id="seed")
        c.randomize = gr.Checkbox(value=False, label="Randomize seed")
    # a number box, not a slider: a slider silently turned 0 into 1 and 150 into 100; out of range, the validator
    # refuses it with the API's own message under this control
    c.steps = gr.Number(
        value=DEFAULT_STEPS, precision=0, label="Steps", info=f"1 to {config.UI_MAX_STEPS}", elem_id="steps"
    )
    c.guidance = gr.Slider(
        1, config.UI_MAX_GUIDANCE, value=DEFAULT_GUIDANCE, step=0.5, label="Guidance scale", elem_id="guidance"
    )
    c.scheduler = gr.Dropdown(choices=list(SCHEDULER_NAMES), value="dpm", label="Scheduler", elem_id="scheduler")
    if limits.hosted:
        c.budget = gr.Markdown(_budget_note(limits), elem_id="budget")
    return c


def _budget_note(limits: config.Limits) -> str:
    parts = [f"up to {limits.max_images} images"] if limits.max_images else []
    if limits.max_step_images:
        parts.append(f"steps × images ≤ {limits.max_step_images}")
    if limits.max_seconds:
        parts.append(f"{limits.max_seconds:g} s of sampling")
    return "Per request on this server: " + ", ".join(parts) + "." if parts else ""


def _recipe_controls(c: SimpleNamespace, service: DemoService | StartingService) -> None:
    """Recipes, the optional compile path, Generate and Download (end of the left column)."""
    import gradio as gr

    from dit_demo.app import offered

    compile_label, compile_shown = service.compile_option()
    c.recipes = gr.CheckboxGroup(
        choices=offered.offered_recipes(service.device),
        value=config.DEFAULT_RECIPES,
        label="Recipes to compare",
        info="the full-precision model is always the reference: fp32 on a CPU, bf16 on a GPU",
        elem_id="recipes",
    )
    c.compile_gpu = gr.Checkbox(
        value=False,
        label=compile_label,
        visible=compile_shown,
        elem_id="compile",
    )
    c.run = gr.Button("Generate", variant="primary", elem_id="generate")
    # disabled until a result exists (`first_screen.download_ready` enables it once /generate has answered)
    c.download = gr.DownloadButton("Download comparison (PNG)", elem_id="download", interactive=False)


def _result_views(model: str) -> SimpleNamespace:
    """Summary with verdicts, captioned tiles, differences, table, chart, raw numbers (the right column); before the
    first result, the shipped pre-computed example of the default request and a call to action."""
    import gradio as gr

    from dit_demo.app import first_screen
    from dit_demo.app.page import slider

    example = first_screen.load(model)
    r = SimpleNamespace()
    r.summary = gr.Markdown(first_screen.summary(example), elem_id="summary")
    r.tiles = gr.HTML(first_screen.figure_html(example), elem_id="tiles", padding=False)
    r.slider = slider.components()  # reference vs one recipe, drag to compare
    # The API's image output (image + caption per recipe and class); the page shows the captioned tiles above.
    r.gallery = gr.Gallery(label="Images", format="png", visible=False, elem_id="gallery")
    r.diff = gr.HTML(elem_id="diff", padding=False)
    r.table = gr.HTML(elem_id="table", padding=False)
    r.chart = gr.HTML(elem_id="chart", padding=False)
    with gr.Accordion("All numbers (what /generate returns)", open=False):
        r.numbers = gr.JSON(elem_id="numbers", show_label=False)
    return r


def _compare_tab(service: DemoService | StartingService) -> tuple[SimpleNamespace, SimpleNamespace]:
    import gradio as gr

    from dit_demo.app.offered import example_label, example_rows

    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            controls = _model_controls(service.default_model, service.limits)
            _recipe_controls(controls, service)
        with gr.Column(scale=2, min_width=300):
            results = _result_views(service.default_model)
    c = controls
    examples = example_rows(service.default_model)
    gr.Examples(
        examples=examples,
        inputs=[c.classes, c.seed, c.steps, c.guidance, c.recipes],
        cache_examples=False,
        label="Examples",
        example_labels=[example_label(row) for row in examples],
    )
    return controls, results


def _static_tabs() -> None:
    """The pre-computed gallery and, where this checkout has it, the GPU benchmark (from their results.json)."""
    import gradio as gr

    from dit_demo.app.page import bench_tab, tabs

    with gr.Tab("Gallery", elem_id="tab-gallery"):
        gr.HTML(tabs.gallery_html(), elem_id="precomputed", padding=False)
    bench = bench_tab.bench_html()
    if bench:
        with gr.Tab("GPU benchmark", elem_id="tab-bench"):
            gr.HTML(bench, elem_id="bench", padding=False)


def _wire(service: DemoService | StartingService, c: SimpleNamespace, r: SimpleNamespace, state) -> list:
    """Model change → class list; Generate → `/generate` (the one public endpoint) → follow-up views.

    `/generate` takes its inputs raw (`preprocess=False`): the service checks every field itself, so a wrong type,
    NaN or an out-of-range value is named (field, type, range) instead of failing inside a component. The
    validator runs before the request is queued, so bad input, an unknown model included, is refused at once.
    """
    from dit_demo.app.first_screen import download_ready
    from dit_demo.app.offered import on_model_change
    from dit_demo.app.page import slider
    from dit_demo.app.page.html import page_views

    c.model.change(on_model_change, c.model, [c.classes, c.model_note], api_visibility="private")
    inputs = [c.model, c.classes, c.seed, c.randomize, c.steps, c.guidance, c.scheduler, c.recipes, c.compile_gpu]
    result = c.run.click(
        service.generate,
        inputs=inputs,
        outputs=[r.gallery, r.numbers, r.summary, c.download, state],
        api_name="generate",
        concurrency_limit=1,
        preprocess=False,
        validator=service.validate,
    )
    views = result.success(page_views, state, [r.tiles, r.diff, r.table, r.chart], api_visibility="private")
    slider.wire(views, state, r.slider)
    # a returned value leaves a disabled button disabled: enable it in the page's own follow-up, so /generate's
    # API answer stays the file (an update dict returned by /generate would reach gradio_client as a dict)
    result.success(download_ready, None, c.download, api_visibility="private", show_progress="hidden")
    return inputs


def _strict_blocks() -> type[gr.Blocks]:
    """`gr.Blocks` whose `/generate` (and its validator, which gradio runs on the same inputs before queueing)
    refuses a wrong number of values with a message naming the parameters.

    Gradio drops extra values and fails with a generic error on missing ones; its per-event `validator` only sees
    the values already cut to the inputs' length, so the count is checked in `Blocks.validate_inputs`, the method
    gradio calls with every event's raw values, overridden in a subclass."""
    import gradio as gr

    from dit_demo.app.inputs import argument_count_message

    class ArgumentCountError(gr.Error):
        def __str__(self) -> str:  # gr.Error shows its repr (quoted); the HTTP answer carries str()
            return self.message

    class StrictBlocks(gr.Blocks):
        strict_inputs: tuple = ()  # the components of `/generate`, set once wired

        def validate_inputs(self, block_fn, inputs):
            ours = len(block_fn.inputs) == len(self.strict_inputs) and all(
                a is b for a, b in zip(block_fn.inputs, self.strict_inputs, strict=True)
            )
            if ours and len(inputs) != len(self.strict_inputs):
                raise ArgumentCountError(argument_count_message(len(inputs)), print_exception=False)
            return super().validate_inputs(block_fn, inputs)

    return StrictBlocks


def build_demo(
    default_model: str | None = None,
    service: DemoService | StartingService | None = None,
    *,
    queue_size: int | None = None,
) -> gr.Blocks:
    """The whole app for one default model; cheap (no weights are loaded until the first request). With a
    `StartingService` nothing here imports torch: the page can be served while the engine loads."""
    import gradio as gr

    from dit_demo.app.page import blind_tab, tabs

    if service is None:
        from dit_demo.app.service import DemoService

        service = DemoService(default_model)
    with _strict_blocks()(title=tabs.TITLE, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(tabs.INTRO)
        startup = gr.Markdown(service.startup_note(), elem_id="startup")  # loading, or what start-up could not do
        if getattr(service, "starting", False):  # the status line follows the background start-up, then stops
            timer = gr.Timer(1.0)
            timer.tick(service.startup_status, None, [startup, timer], api_visibility="private", show_progress="hidden")
        state = gr.State()
        with gr.Tab("Compare", elem_id="tab-compare"):
            controls, results = _compare_tab(service)
        demo.blind = blind_tab.build(service).game  # "Spot the quantized": its votes, tally and store
        _static_tabs()
        demo.strict_inputs = tuple(_wire(service, controls, results, state))
        demo.load(service.startup_note, None, startup, api_visibility="private")  # read again on every page load
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
        f"{config.CPU_THREADS_ENV}, DIT_DEMO_MAX_BATCH; hosted mode: {config.HOSTED_ENV} (default: on when "
        f"{config.SPACE_ENV} is set, i.e. on a Space), {config.ALLOWED_MODELS_ENV}, {config.MAX_IMAGES_ENV} "
        f"({config.HOSTED_MAX_IMAGES}), {config.MAX_STEP_IMAGES_ENV} ({config.HOSTED_MAX_STEP_IMAGES}), "
        f"{config.MAX_SECONDS_ENV} ({config.HOSTED_MAX_SECONDS:g}); GRADIO_SERVER_NAME / GRADIO_SERVER_PORT when "
        "--host / --port are not given. Spot the quantized: DIT_DEMO_DATA_DIR (where votes are kept; default "
        "/data/dit-demo on a Space with persistent storage, else ~/.local/share/dit-demo), DIT_DEMO_VOTES_DATASET "
        "(owner/name: also commit votes to that Hub dataset), DIT_DEMO_VOTES_EVERY (5 min), DIT_DEMO_BLIND_RECIPES, "
        "DIT_DEMO_BLIND_STEPS (12), DIT_DEMO_BLIND_SEEDS (100).",
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
    parser.add_argument(
        "--hosted",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"hosted mode: only allow-listed models, per-request budgets (default: ${config.HOSTED_ENV}, else on "
        f"when ${config.SPACE_ENV} is set)",
    )
    parser.add_argument(
        "--allowed-models",
        help=f"hosted mode: comma list of the models visitors may pick (default: ${config.ALLOWED_MODELS_ENV}, else "
        "the embedded model and the default model)",
    )
    return parser


def _log_to_stderr() -> None:
    """The app's own log lines (start-up, preload, ZeroGPU) at INFO on the server's stderr (a Space's log)."""
    import logging

    logger = logging.getLogger("dit_demo")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the flags, build `demo` (kept as this module's global, which `gradio app.py` reloads) and serve it."""
    global demo
    args = build_parser().parse_args(argv)
    from dit_demo.app import startup
    from dit_demo.app.page.views import launch_kwargs

    _log_to_stderr()
    allowed = [m.strip() for m in args.allowed_models.split(",") if m.strip()] if args.allowed_models else None
    settings = dict(max_variants=args.max_variants, hosted=args.hosted, allowed_models=allowed)
    preload = not args.no_preload and not os.environ.get("GRADIO_WATCH_DIRS")  # not again on every hot reload
    options = {"server_name": args.host, "server_port": args.port, "share": True if args.share else None}
    options = {k: v for k, v in options.items() if v is not None} | launch_kwargs()
    if startup.serve_before_torch():  # a CPU host: serve first, import torch & co. in the background after
        service = startup.StartingService(args.model, **settings)
        demo = build_demo(service=service, queue_size=args.queue_size)
        demo.launch(**options, prevent_thread_lock=True)
        service.start(preload=preload)
        demo.block_thread()
        return
    from dit_demo.app.service import DemoService

    service = DemoService(args.model, **settings)
    demo = build_demo(service=service, queue_size=args.queue_size)
    if preload:
        service.start_preload()
    demo.launch(**options)


if __name__ == "__main__":
    main()
