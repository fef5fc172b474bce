"""DiT × optimum-quanto demo: the Gradio front door, locally (`python app.py [--model SOURCE]`) and as a Space.

Layout and event wiring only; every handler, default and formatter lives in `dit_demo.app.logic`, so the same
code serves the page and the `/generate` API endpoint and can be tested without a browser.
"""

from __future__ import annotations

import sys

import gradio as gr

import dit_demo.app.logic as logic
from dit_demo.engine.sources import SCHEDULERS


def build_demo(default_model: str | None = None, service: logic.DemoService | None = None) -> gr.Blocks:
    """The whole app for one default model; cheap (no weights are loaded until the first request)."""
    service = service or logic.DemoService(default_model)
    model = service.default_model
    with gr.Blocks(title="DiT × quanto: same seed, every recipe", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(logic.INTRO)
        state = gr.State()
        with gr.Tab("Compare"):
            with gr.Row():
                with gr.Column(scale=1, min_width=320):
                    model_box = gr.Dropdown(
                        choices=logic.model_choices(model),
                        value=model,
                        allow_custom_value=True,
                        label="Model",
                        info="embedded digits, a Hub id (facebook/DiT-XL-2-256, a pre-quantized repo) or a folder",
                        elem_id="model",
                    )
                    model_note = gr.Markdown(logic.model_note(model))
                    classes = gr.Dropdown(
                        choices=logic.class_choices(model),
                        value=logic.default_classes(model),
                        multiselect=True,
                        allow_custom_value=True,
                        label="Classes (type to search; one image per class)",
                        elem_id="classes",
                    )
                    with gr.Row():
                        seed = gr.Number(value=0, precision=0, label="Seed", elem_id="seed")
                        randomize = gr.Checkbox(value=False, label="Randomize seed")
                    steps = gr.Slider(1, logic.UI_MAX_STEPS, value=logic.DEFAULT_STEPS, step=1, label="Steps")
                    guidance = gr.Slider(
                        1, logic.UI_MAX_GUIDANCE, value=logic.DEFAULT_GUIDANCE, step=0.5, label="Guidance scale"
                    )
                    scheduler = gr.Dropdown(choices=list(SCHEDULERS), value="dpm", label="Scheduler")
                    recipes = gr.CheckboxGroup(
                        choices=logic.COMPARE_RECIPES,
                        value=logic.DEFAULT_RECIPES,
                        label="Recipes to compare (bf16 is always the reference)",
                    )
                    compile_gpu = gr.Checkbox(
                        value=False,
                        label="compile (GPU): torch.compile / CUDA graphs, warm-up reported separately",
                        visible=logic.fast_compile_available(),
                    )
                    run = gr.Button("Generate", variant="primary", elem_id="generate")
                    download = gr.DownloadButton("Download comparison (PNG)", elem_id="download")
                with gr.Column(scale=2):
                    summary = gr.Markdown(elem_id="summary")
                    gallery = gr.Gallery(
                        label="Same seed: reference and each recipe",
                        format="png",
                        columns=2,
                        object_fit="contain",
                        height=360,
                        elem_id="gallery",
                    )
                    with gr.Row():
                        slider = gr.ImageSlider(
                            label="Reference ↔ first quantized recipe", format="png", type="pil", elem_id="slider"
                        )
                        diff = gr.Image(
                            label=f"Amplified difference (×{logic.DIFF_GAIN:g})", format="png", elem_id="diff"
                        )
                    table = gr.Dataframe(
                        headers=logic.table_headers(), label="Numbers per recipe", elem_id="table", wrap=True
                    )
                    chart = gr.ScatterPlot(
                        x="latency_s",
                        y="weights_mb",
                        color="recipe",
                        x_title="end-to-end latency (s)",
                        y_title="transformer weights (MB)",
                        label="Latency vs memory",
                        height=260,
                    )
                    numbers = gr.JSON(label="All numbers (what /generate returns)", elem_id="numbers")
            gr.Examples(
                examples=logic.example_rows(model),
                inputs=[classes, seed, steps, guidance, recipes],
                cache_examples=False,
                label="Examples",
            )
        with gr.Tab("Pre-computed gallery"):
            for name in ("grid.png", "chart.png"):
                picture = logic.gallery_grid(name=name)
                if picture:
                    gr.Image(value=picture, label=name, format="png", elem_id=f"precomputed-{name[:-4]}")
            gr.Markdown(logic.gallery_markdown())
        bench = logic.bench_markdown()
        if bench:
            with gr.Tab("GPU benchmark"):
                gr.Markdown(bench)

        model_box.change(logic.on_model_change, model_box, [classes, model_note], api_visibility="private")
        run.click(
            service.generate,
            inputs=[model_box, classes, seed, randomize, steps, guidance, scheduler, recipes, compile_gpu],
            outputs=[gallery, numbers, summary, download, state],
            api_name="generate",
            concurrency_limit=1,
        ).success(logic.views, state, [slider, diff, table, chart, gallery], api_visibility="private")
    demo.queue(default_concurrency_limit=1, max_size=logic.QUEUE_SIZE)
    demo.service = service  # tests and the launcher reach the cache through the app
    return demo


demo = build_demo(logic.default_model(sys.argv[1:] if __name__ == "__main__" else None))

if __name__ == "__main__":
    demo.service.start_preload()
    demo.launch(**logic.launch_kwargs())
