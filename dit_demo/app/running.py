"""The device-bound part of a request and the mapping of failures to messages a person can act on.

Shared by the in-process path (`dit_demo.app.service`) and ZeroGPU's worker (`dit_demo.app.gpu_call`), which must
turn every failure into a `gr.Error` itself: `spaces` passes only `gr.Error` messages back from the worker.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import gradio as gr
import torch

from dit_demo.app.budget import time_budget, warm_up
from dit_demo.compare import Comparison
from dit_demo.compare import compare as score_variants
from dit_demo.engine.device import free_memory
from dit_demo.engine.generate import Variant
from dit_demo.engine.request import SamplingRequest
from dit_demo.errors import DemoError

log = logging.getLogger("dit_demo.app")

OUT_OF_MEMORY = (
    "Out of memory while generating. Reduce the number of classes (images per request), compare fewer recipes at "
    "once, lower the resolution (DiT-XL-2-256 instead of -512), or try again when the GPU is less busy."
)


# ---------------------------------------------------------------------------------------------------------------
# Errors


@contextmanager
def user_errors() -> Iterator[None]:
    """Every failure becomes a `gr.Error` a person can act on; the server keeps serving the next request."""
    try:
        yield
    except gr.Error:
        raise
    except DemoError as exc:
        raise gr.Error(str(exc), print_exception=False) from exc
    except torch.OutOfMemoryError as exc:
        free_memory()
        raise gr.Error(OUT_OF_MEMORY, print_exception=False) from exc
    except Exception as exc:  # anything unforeseen: say what it was, log the traceback, keep serving
        log.error("Unexpected error in a request:\n%s", traceback.format_exc())
        free_memory()
        raise gr.Error(f"Unexpected error: {type(exc).__name__}: {exc}", print_exception=False) from exc


def run_comparison(
    variants: dict[str, Variant],
    request: SamplingRequest,
    *,
    reference: str,
    cold: Sequence[Variant] = (),
    seconds: float | None = None,
    rounds: int = 1,
) -> Comparison:
    """The device-bound part of a request (on ZeroGPU it runs inside `gpu_call.run_on_gpu`).

    `cold` variants were never run: one 2-step image each first (`warm_up`), so one-time costs do not land on
    whichever recipe happens to run first and skew the latency comparison. `seconds` bounds the timed sampling
    (not the warm-ups) and the `rounds` interleaved timed runs behind each speed verdict (`compare.compare`).
    """
    for variant in cold:
        warm_up(variant, request)
    with time_budget(list(variants.values()), seconds):
        return score_variants(variants, request, reference=reference, rounds=rounds)
