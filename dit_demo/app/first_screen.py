"""The first screen: a finished comparison at once, computed ahead of time and shipped, marked as such.

A visitor used to see an empty right column until they pressed Generate and waited for a first start. Now the
Compare tab opens on the default request's comparison (the downloadable PNG and its verdicts), generated on a named
machine by `python -m dit_demo.app.first_screen` into `dit_demo/app/example/` (comparison.png + example.json), and
a line that says it is pre-computed and what pressing Generate does. The first live result replaces it.

Reading the example needs no torch (the page is served before torch is imported); building it runs the app's own
service, so the example is exactly what Generate returns for the same request on that machine.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import logging
import os
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

from dit_demo.app import config
from dit_demo.app.page.views import summary_markdown

log = logging.getLogger("dit_demo.app")

EXAMPLE_DIR = Path(__file__).resolve().parent / "example"
IMAGE, RECORD = "comparison.png", "example.json"
COMMAND = "python -m dit_demo.app.first_screen"
CALL_TO_ACTION = (
    "Press **Generate** to run this comparison live on this server (or change classes, seed or recipes first)."
)


def load(model: str, folder: Path = EXAMPLE_DIR) -> dict | None:
    """The shipped example when it was made with `model` (the page's default), else None (a missing or unreadable
    example is logged: the page then shows the call to action alone)."""
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
        image = (folder / IMAGE).read_bytes()
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("First screen: the shipped example in %s is unreadable (%s)", folder, exc)
        return None
    if record.get("numbers", {}).get("model") != model:
        return None
    return {**record, "png": image}


def provenance(example: Mapping) -> str:
    """'generated on <machine> with <recipes>, <date>': where the pre-computed numbers come from."""
    made = example["generated"]
    return f"generated on {made['machine']} with {', '.join(made['recipes'])} (torch {made['torch']}), {made['date']}"


def summary(example: Mapping | None) -> str:
    """The summary column before any result: the call to action, and the example's verdicts marked as pre-computed."""
    if example is None:
        return CALL_TO_ACTION
    note = f"**Pre-computed example**, {provenance(example)}; not run on this server."
    numbers = dict(example["numbers"])  # its verdicts say "here": the machine it was generated on
    numbers["verdicts"] = {r: v.replace(" here", " on that machine") for r, v in numbers["verdicts"].items()}
    return f"{CALL_TO_ACTION}\n\n{note}\n\n{summary_markdown(numbers)}"


def figure_html(example: Mapping | None) -> str:
    """The example's comparison PNG (the same one Download gives) as an inline image with its provenance."""
    if example is None:
        return ""
    data = base64.b64encode(example["png"]).decode("ascii")
    numbers = example["numbers"]
    alt = f"Pre-computed comparison of {', '.join(numbers['recipes'])} for {', '.join(numbers['classes'])}"
    caption = f"Pre-computed example, {provenance(example)}."
    return (
        f'<figure class="dq-example"><img class="dq-example-img" src="data:image/png;base64,{data}" '
        f'alt="{escape(alt)}"><figcaption>{escape(caption)}</figcaption></figure>'
    )


def download_ready() -> dict:
    """The Download button, enabled: it starts disabled (nothing to download), and a new value alone does not enable
    it (Gradio changes a component's `interactive` only when an update names it)."""
    import gradio as gr

    return gr.update(interactive=True)


# ---------------------------------------------------------------------------------------------------------------
# Building it (heavy: the app's service, torch)


def default_request(model: str) -> list:
    """The values the first screen's controls hold, in `/generate`'s order (what Generate sends unchanged)."""
    from dit_demo.app import offered
    from dit_demo.engine.request import DEFAULT_GUIDANCE, DEFAULT_STEPS

    classes = offered.default_classes(model)
    return [model, classes, 0, False, DEFAULT_STEPS, DEFAULT_GUIDANCE, "dpm", list(config.DEFAULT_RECIPES), False]


def build(model: str | None = None, folder: Path = EXAMPLE_DIR, *, machine: str | None = None) -> dict:
    """Run the default request through the app's service on this machine's CPU and write the example."""
    import torch

    from dit_demo.app.inputs import Request
    from dit_demo.app.page.views import comparison_strip, numbers_json
    from dit_demo.app.service import DemoService
    from dit_demo.engine.machine import cpu_name
    from dit_demo.engine.timing import machine_load

    service = DemoService(model, device="cpu")
    request = Request.parse(*default_request(service.default_model), limits=service.limits)
    comparison = service.compare(request)
    numbers = numbers_json(comparison, request)
    folder.mkdir(parents=True, exist_ok=True)
    comparison_strip(comparison).save(folder / IMAGE, format="PNG", optimize=True)
    generated = {
        "machine": machine or f"{cpu_name()} ({os.cpu_count()} CPUs)",
        "recipes": [row["label"] for row in numbers["recipes"].values()],
        "torch": torch.__version__,
        "date": dt.date.today().isoformat(),
        "load_1min": machine_load(),
        "command": COMMAND,
    }
    record = {"generated": generated, "numbers": numbers}
    (folder / RECORD).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return record


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=COMMAND, description="Regenerate the first screen's pre-computed example.")
    parser.add_argument("--model", help="default: the app's default model (the embedded digits model)")
    parser.add_argument("--out", type=Path, default=EXAMPLE_DIR)
    parser.add_argument("--machine", help="how to name this machine (default: its CPU model and core count)")
    args = parser.parse_args(argv)
    record = build(args.model, args.out, machine=args.machine)
    print(f"{args.out / IMAGE}: {provenance(record)}")


if __name__ == "__main__":
    main()
