"""The model card's text: its template and the load snippets it shows (generated from the measured record).

Every snippet is run verbatim by the tests: the stock-diffusers and quanto ones in a clean venv holding only the
install line's packages, the dit_demo one in the project's environment.
"""

from __future__ import annotations

TEMPLATE = """---
{{ card_data }}
---

# {{ repo_name }} — {{ recipe }} ({{ recipe_description }})

This repository holds a **complete `DiTPipeline`** (`model_index.json` with class names, `vae/`, `scheduler/`,
`transformer/`) whose transformer was quantized with [optimum-quanto](https://github.com/huggingface/optimum-quanto)
`{{ quanto_version }}`, saved in quanto's own format (`config.json`, `diffusion_pytorch_model.safetensors`,
`quanto_qmap.json`). Base model: {{ base_description }}. Made with the dit-quanto-demo project
({{ source_link }}).
{% if random_weights %}
> **Random weights.** The base has no trained weights: the images below are noise. This repo exists to measure
> size, memory and speed of the quantized architecture, not to generate anything.
{% endif %}
## What was quantized, and how

| | |
|---|---|
| recipe | `{{ recipe }}` — {{ recipe_description }} |
| quantized modules | {{ num_quantized }} (`nn.Linear`/`nn.Conv2d` of the transformer) |
| kept in full precision | {{ kept_text }} |
| calibration | {{ calibration_text }} |
| quantize / calibrate time | {{ quantize_s }} / {{ calibrate_s }} |

The VAE and scheduler are unchanged copies of the base model's, stored in its dtype.

## How to load

Install (the versions this repo was tested with):

```bash
{{ install_line }}
```
{% if stock_loadable %}
With stock diffusers (`transformer/config.json` carries the `quantization_config` diffusers' quanto backend reads;
that backend is deprecated and planned for removal in diffusers 1.0 — the loaders below do not depend on it):

```python
{{ stock_snippet }}
```
{% else %}
Stock `DiTPipeline.from_pretrained` cannot load this recipe: {{ recipe }} has {{ stock_refusal }}, which
diffusers' quanto backend cannot represent, so `transformer/config.json` makes it raise a `ValueError` that says how
to load the folder (instead of silently running the wrong weights). Use one of the loaders below.
{% endif %}
With optimum-quanto's own loader (no dit_demo needed: the transformer is re-quantized from `quanto_qmap.json`):

```python
{{ quanto_snippet }}
```

With this project's `dit_demo` package (it validates every tensor and refuses a broken download); from a clone of
its source: `git clone {{ source_url }} dit-quanto-demo && cd dit-quanto-demo && pip install -r requirements.txt`,
then, in that folder:

```python
{{ project_snippet }}
```

Each snippet makes the batch the samples were made in ({{ batch }} image{{ "s" if batch != 1 else "" }}: classes
{{ labels_text }}; seeds {{ seeds_text }}) and saves its first image as `sample.png`: the same pixels as
`{{ sample.file }}` in this repo on the same kind of machine ({{ sample_machine }}).{% if batch_dependent %} **Only in
that batch**: {{ recipe }} quantizes activations with calibrated static scales, so an image depends on the batch it
is made in (other classes or another batch size change it by a few levels of 255).{% endif %}

## Measured

All numbers below were measured in the run that wrote this repo (`measurements.json` has them unrounded), on
**{{ machine_line }}**: {{ steps }} steps of `{{ scheduler }}`, guidance {{ guidance_scale }}, batch {{ batch }}
(classes {{ labels_text }}, seeds {{ seeds_text }}); latency = the first timed end-to-end call after model
load{{ warmup_text }}; the latency ratio and the speed verdict rest on the reference and the recipe timed interleaved
(median, min–max). The reference is the base model in {{ reference_dtype }} on {{ reference_device }}
(bfloat16 on a GPU, float32 on a CPU).

### Size

| | this repo ({{ recipe }}) | full-precision base |
|---|---|---|
| transformer checkpoint on disk | {{ size.transformer_checkpoint }} | {{ size.base_transformer_checkpoint }} |
| transformer weights in memory | {{ size.weight_bytes }} | {{ size.base_weight_bytes }} |
| whole pipeline repo on disk | {{ size.repo }} | {{ size.base_repo }} |

Base checkpoint size measured from {{ size.base_how }}. MiB = 2^20 bytes.

### Speed, memory and quality (same classes and seeds)

{% for line in quality_table -%}
{{ line }}
{% endfor %}
Peak memory is that of the whole process while every variant in the table is loaded (they run one after the other
in one process), so it is not the footprint of one variant alone; the transformer weight bytes above are.
Ratios {{ recipe }} / reference: latency {{ ratios.latency }}, peak memory {{ ratios.peak_memory }},
transformer weights {{ ratios.weight_bytes }}. Speed: {{ recipe }} is {{ speed_text }}.
{% if cpu_text %}{{ cpu_text }}
{% endif %}
### Samples

Top row: the {{ reference_dtype }} reference; bottom row: {{ recipe }}; same class and seed per column.

![reference vs {{ recipe }}](gallery.png)

## Reproduce

From the project's source ({{ source_link }}):

```bash
git clone {{ source_url }} dit-quanto-demo
cd dit-quanto-demo
pip install -r requirements.txt
{{ command }}
```
"""


SOURCE_PLACEHOLDER = "SOURCE-URL"  # a dry run without --source-url; `dit-demo push-model --push` requires a real one


def _tail(m: dict) -> str:
    """The generation lines every snippet shares: the samples' batch, one CPU generator per image."""
    request = m["request"]
    return (
        f'generators = [torch.Generator("cpu").manual_seed(seed) for seed in {list(request["seeds"])}]\n'
        "images = pipe(\n"
        f"    class_labels={list(request['class_ids'])},  # {', '.join(map(str, request['labels']))}\n"
        f"    num_inference_steps={request['steps']},\n"
        f"    guidance_scale={request['guidance_scale']},\n"
        "    generator=generators,\n"
        ").images\n"
        f'images[0].save("sample.png")  # the same pixels as {m["samples"][0]["file"]}'
    )


def where_run(m: dict) -> tuple[str, str]:
    """(device type, torch dtype name) the recipe ran on: the snippets load the same way."""
    row = next(r for r in m["rows"] if r["recipe"] == m["recipe"])
    return row["device"].split(":")[0], row["dtype"]


def stock_snippet(m: dict) -> str:
    device, dtype = where_run(m)
    return (
        "import torch\nfrom diffusers import DiTPipeline\n\n"
        f'pipe = DiTPipeline.from_pretrained("{m["repo_id"]}", torch_dtype=torch.{dtype}).to("{device}")\n' + _tail(m)
    )


# A smoothed recipe (int8-a8-smooth) folds most of its smoothing into the weights; the input scales of ff.net.2 are
# stored apart (transformer/smoothing.safetensors) and must be applied before quanto quantizes that layer's input.
SMOOTHING_LINES = (
    "# smoothing: ff.net.2 of every block divides its input by a stored per-channel scale (before quanto's own hook)\n"
    "from safetensors.torch import load_file\n\n"
    'for name, scale in load_file(f"{folder}/transformer/smoothing.safetensors").items():\n'
    '    if name.endswith(".fc2_in"):\n'
    '        layer = transformer.get_submodule(name.rsplit(".", 1)[0]).ff.net[2]\n'
    "        layer.register_forward_pre_hook(lambda m, a, inv=1.0 / scale: (a[0] * inv.to(a[0]),), prepend=True)\n"
)


def quanto_snippet(m: dict) -> str:
    device, dtype = where_run(m)
    scheduler = m["scheduler_class"]
    return (
        "import json\n\nimport torch\n"
        f"from diffusers import AutoencoderKL, DiTPipeline, DiTTransformer2DModel, {scheduler}\n"
        "from huggingface_hub import snapshot_download\nfrom optimum.quanto import QuantizedDiffusersModel\n\n\n"
        "class QuantizedDiTTransformer2DModel(QuantizedDiffusersModel):\n    base_class = DiTTransformer2DModel\n\n\n"
        f'folder = snapshot_download("{m["repo_id"]}")\n'
        'transformer = QuantizedDiTTransformer2DModel.from_pretrained(f"{folder}/transformer")._wrapped  # nn.Module\n'
        + (SMOOTHING_LINES if (m.get("quantization") or {}).get("smoothing") else "")
        + 'with open(f"{folder}/model_index.json", encoding="utf-8") as handle:\n'
        '    id2label = json.load(handle)["id2label"]\n'
        "pipe = DiTPipeline(\n"
        f'    transformer=transformer.to("{device}", torch.{dtype}),\n'
        f'    vae=AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=torch.{dtype}).to("{device}"),\n'
        f'    scheduler={scheduler}.from_pretrained(folder, subfolder="scheduler"),\n'
        "    id2label=id2label,\n)\n" + _tail(m)
    )


def project_snippet(m: dict) -> str:
    device, _ = where_run(m)
    return (
        "import torch\nfrom dit_demo.engine.model.loading import load_pipeline\n\n"
        f'pipe = load_pipeline("{m["repo_id"]}", device="{device}")  # float32 on a CPU, bfloat16 on a GPU\n' + _tail(m)
    )


def install_line(m: dict) -> str:
    """`pip install` with every package the stock and quanto snippets import, at the versions tested."""
    return "pip install " + " ".join(m["install"]["packages"])
