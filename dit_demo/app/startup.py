"""Serve the page first, import torch after: the service the page talks to while the engine loads.

On a 2-core CPU, importing gradio took 3.7 s and torch + diffusers (with torch._dynamo, scipy.stats) another
4–6 s; the page needs only gradio. So `python app.py` builds the page from torch-free modules (offered, inputs,
page/*), launches, and only then imports `dit_demo.app.service` (torch, diffusers, optimum-quanto) in a background
thread that also builds and warms up the default model (`DemoService.preload`). A request arriving meanwhile waits
with a visible progress message; the status line above the tabs says what is loading until it is done.

Only where no NVIDIA driver is present: what the page offers (recipes, the compile option) depends on the device,
and without a driver it is the CPU, known without asking torch. With a driver, or on ZeroGPU (whose start-up must
build before launch, see `dit_demo.app.zerogpu`), the app builds `DemoService` before launch as before.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr

from dit_demo.app import config
from dit_demo.app.inputs import FIELDS, Request
from dit_demo.engine.request import MAX_BATCH

if TYPE_CHECKING:
    from dit_demo.app.service import DemoService

log = logging.getLogger("dit_demo.app")

ZERO_GPU_ENV = "SPACES_ZERO_GPU"  # = dit_demo.app.zerogpu.ZERO_GPU_ENV (which imports torch; a test keeps them equal)
NVIDIA_MARKERS = ("/proc/driver/nvidia/version", "/dev/nvidiactl")  # present wherever an NVIDIA driver is loaded
LOADING_NOTE = (
    "Loading the model (first start): torch, diffusers and optimum-quanto are being imported in the background. "
    "The page works meanwhile; Generate waits until they are ready."
)
LOADING_PROGRESS = "Loading the model (first start): importing torch, diffusers and optimum-quanto…"


def nvidia_present(markers: tuple[str, ...] = NVIDIA_MARKERS, environ: Mapping[str, str] | None = None) -> bool:
    """An NVIDIA driver is loaded and not hidden from this process (CUDA_VISIBLE_DEVICES="" or "-1" hides it)."""
    visible = (os.environ if environ is None else environ).get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return any(Path(marker).exists() for marker in markers)


def zero_gpu_requested(environ: Mapping[str, str] | None = None) -> bool:
    """SPACES_ZERO_GPU is set true (what `spaces.config.Config.zero_gpu` reads)."""
    value = (os.environ if environ is None else environ).get(ZERO_GPU_ENV, "")
    return value.strip().lower() in ("1", "t", "true")


def serve_before_torch(environ: Mapping[str, str] | None = None) -> bool:
    """Whether `python app.py` may serve the page before importing torch: a CPU host that is not ZeroGPU."""
    return not zero_gpu_requested(environ) and not nvidia_present(environ=environ)


class StartingService:
    """The page's service until the engine is imported: checks inputs without torch, and hands `/generate` to the
    real `DemoService` once the background thread has built it (waiting for it with a progress message)."""

    starting = True  # build_demo adds the status line's timer for this service
    device = "cpu"  # only used where `serve_before_torch()` holds

    def __init__(
        self,
        default_model: str | None = None,
        *,
        hosted: bool | None = None,
        allowed_models: list[str] | None = None,
        max_variants: int | None = None,
    ):
        self.default_model = config.default_model(default_model)
        self.limits = config.limits(self.default_model, hosted_mode=hosted, allowed_models=allowed_models)
        self.max_batch = MAX_BATCH
        self.output_dir = Path(tempfile.mkdtemp(prefix="dit-demo-app-"))  # shared with the service it starts
        self._max_variants = max_variants
        self._ready = threading.Event()
        self.service: DemoService | None = None
        self.problems: list[str] = []  # the background start-up's own failure (import or construction)
        self.thread: threading.Thread | None = None

    # -- the background start-up ------------------------------------------------------------------------------

    def start(self, *, preload: bool = True) -> threading.Thread:
        """Import the engine, build the `DemoService` and (with `preload`) its default model, in a daemon thread."""
        self.thread = threading.Thread(target=self._load, args=(preload,), name="dit-demo-startup", daemon=True)
        self.thread.start()
        return self.thread

    def _load(self, preload: bool) -> None:
        start = time.perf_counter()
        try:
            from dit_demo.app.service import DemoService

            self.service = DemoService(
                self.default_model, limits=self.limits, max_variants=self._max_variants, output_dir=self.output_dir
            )
            log.info("Engine imported in %.2f s (after the page was served)", time.perf_counter() - start)
        except Exception as exc:  # the page says so; Generate reports it
            log.exception("Start-up failed")
            self.problems.append(f"importing the engine failed ({type(exc).__name__}: {exc})")
        finally:
            self._ready.set()  # requests go to the service now; a running preload holds its run lock
        if self.service is not None and preload:
            self.service.preload()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def wait(self, timeout: float | None = None) -> DemoService:
        """The engine's service once imported; raises `gr.Error` if start-up failed or `timeout` passed."""
        if not self._ready.wait(timeout):
            raise gr.Error("The model is still loading (first start); try again in a few seconds.")
        if self.service is None:
            raise gr.Error("Start-up failed: " + "; ".join(self.problems), print_exception=False)
        return self.service

    # -- what the page calls ----------------------------------------------------------------------------------

    def compile_option(self) -> tuple[str, bool]:
        """(label, shown): no CUDA GPU here, so the compile checkbox is hidden."""
        return config.COMPILE_LABEL, False

    def startup_note(self) -> str:
        if not self.ready:
            return LOADING_NOTE
        note = self.service.startup_note() if self.service is not None else ""
        return "\n".join([note, *(f"⚠️ Start-up: {p}" for p in self.problems)]).strip()

    def startup_status(self) -> tuple[str, gr.Timer]:
        """The status line for the page's timer, which stops once the engine is ready."""
        return self.startup_note(), gr.Timer(active=not self.ready)

    def validate(self, *values) -> list[dict]:
        """Inputs are checked without torch until the engine is ready (no time budget before anything ran)."""
        if self.service is not None:
            return self.service.validate(*values)
        _, errors = Request.check(*values, limits=self.limits, max_batch=self.max_batch)
        return [gr.validate(field not in errors, errors.get(field, "")) for field in FIELDS]

    def sample(self, request: Request) -> dict:
        """The blind test's rounds (`DemoService.sample`), once the engine is imported."""
        return self.wait().sample(request)

    def generate(
        self,
        model: str,
        classes: list[str],
        seed: float,
        randomize_seed: bool,
        steps: float,
        guidance_scale: float,
        scheduler: str,
        recipes: list[str],
        compile_gpu: bool = False,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ):
        """`DemoService.generate` (same parameters: this is the `/generate` API), after the engine is imported."""
        if not self.ready:
            progress(0, desc=LOADING_PROGRESS)
            log.info("A request waits for the engine (first start)")
        service = self.wait()
        return service.generate(
            model,
            classes,
            seed,
            randomize_seed,
            steps,
            guidance_scale,
            scheduler,
            recipes,
            compile_gpu,
            progress=progress,
        )
