"""Whole-step capture: one CUDA graph per denoising step (transformer + guidance + sampler update), one for the
request's conditioning tables and one for the VAE decode.

`torch.compile(mode="reduce-overhead")` captures only the transformer forward; between forwards the pipeline's
Python loop, the classifier-free-guidance split/combine and the scheduler update run on the host every step
(bench/README.md, "What fused QKV and whole-step capture each bring": 4.57 → 2.31 ms per step at 256² b1 on an
H200 once they are inside the graph). Here the step is a fixed function of a few static buffers:

- the sampler update is the per-step linear recurrence of `dit_demo.engine.fast.recurrence` (fitted from the real
  diffusers scheduler), its coefficients and timesteps in device tables indexed by a device step counter that the
  graph itself advances, so 25 steps are 25 `graph.replay()` calls and nothing else on the host;
- the adaLN conditioning of every step is computed before the loop (`dit_demo.engine.fast.conditioning`);
- the transformer is the variant's own module (compiled by Inductor without CUDA graphs, so it can be captured here).

`CapturedDiTPipeline` is a `DiTPipeline` whose `__call__` takes this path when it can (CUDA graphs on a GPU; the
same step function run eagerly on CPU, which is how the tests check its numerics) and the plain pipeline otherwise
(a sampler that is not linear, e.g. DDIM with its default `clip_sample`). Callers keep calling
`dit_demo.engine.generate.generate(variant, request)`; `last_path` says which path ran.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from diffusers import DiTPipeline
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor

from dit_demo.engine.fast import conditioning
from dit_demo.engine.fast.recurrence import NotCapturable, linear_recurrence
from dit_demo.engine.fast.slot import Slot, capture_graph, scheduler_key
from dit_demo.engine.model.sources import NULL_CLASS_ID

MAX_SLOTS = 4  # (batch, guidance on/off, steps, sampler) combinations kept captured; the oldest is dropped


class StepSampler:
    """The captured sampler of one pipeline: slots of static buffers and their graphs, keyed by request shape."""

    def __init__(self, pipe: DiTPipeline, *, graphs: bool = True):
        self.pipe = pipe
        transformer = pipe.transformer
        self.use_tables = conditioning.supports_tables(transformer)
        self.tables = conditioning.install_tables(transformer) if self.use_tables else []
        self.graphs = graphs and transformer.device.type == "cuda"
        self.pool = torch.cuda.graph_pool_handle() if self.graphs else None
        self.slots: OrderedDict[tuple, Slot] = OrderedDict()
        self.current: dict[int, torch.Tensor] = {}  # rows -> the tables' shared per-step buffer
        self.failure: str | None = None  # why graphs were given up (the eager step still runs)
        # an ahead-of-time compiled forward (engine.fast.aot): (latent, timestep, labels, conditioning row) → output
        self.forward = None

    def set_forward(self, forward) -> None:
        """Run the step's transformer forward through `forward` (None: the transformer itself); drops captured
        graphs, which replay the old forward."""
        self.forward = forward
        for slot in self.slots.values():
            slot.graphs = None
            slot.forward_graph = None

    # -- building -------------------------------------------------------------------------------------------------
    def check(self, guidance_scale: float) -> None:
        """Raise NotCapturable when this pipeline's shape of call cannot take the captured path."""
        config = self.pipe.transformer.config
        if config.out_channels not in (config.in_channels, 2 * config.in_channels):
            raise NotCapturable(f"out_channels {config.out_channels} is neither in_channels nor twice it")
        vae = self.pipe.vae
        if getattr(vae, "use_slicing", False) or getattr(vae, "use_tiling", False):
            raise NotCapturable("VAE slicing/tiling is on")

    def slot(self, batch: int, guidance_scale: float, steps: int) -> Slot:
        cfg = guidance_scale > 1
        key = (batch, cfg, steps, scheduler_key(self.pipe.scheduler))
        if key in self.slots:
            self.slots.move_to_end(key)
            return self.slots[key]
        recurrence = linear_recurrence(self.pipe.scheduler, steps)  # raises NotCapturable
        rows = batch * (2 if cfg else 1)
        current = self._current(rows)
        slot = Slot.create(self.pipe, batch, cfg, recurrence, current)
        while len(self.slots) >= MAX_SLOTS:
            self.slots.popitem(last=False)
        self.slots[key] = slot
        return slot

    def _current(self, rows: int) -> torch.Tensor | None:
        if not self.use_tables:
            return None
        if rows not in self.current:
            transformer = self.pipe.transformer
            columns = conditioning.total_columns(self.tables)
            self.current[rows] = torch.zeros(rows, columns, device=transformer.device, dtype=transformer.dtype)
        return self.current[rows]

    def _graphs(self, slot: Slot) -> None:
        """Capture the slot's three graphs once (warm-up included); on failure fall back to eager steps."""
        if not self.graphs or slot.graphs is not None or self.failure:
            return
        try:
            slot.graphs = {
                "fill": capture_graph(lambda: self._fill(slot), self.pool, lambda: None),
                "step": capture_graph(lambda: self._step(slot), self.pool, slot.index.zero_),
                "decode": capture_graph(lambda: self._decode(slot), self.pool, lambda: None),
            }
        except Exception as exc:  # an op that cannot be captured: keep going without graphs, and say so
            self.failure = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            slot.graphs = None
            torch.cuda.synchronize()

    # -- the captured functions ---------------------------------------------------------------------------------
    def _fill(self, slot: Slot) -> None:
        if not self.use_tables:
            return
        steps, rows = slot.table.shape[:2]
        timesteps = slot.timesteps.repeat_interleave(rows)
        labels = slot.labels.repeat(steps)
        conditioning.fill_tables(self.pipe.transformer, self.tables, timesteps, labels, slot.table)

    def _step(self, slot: Slot) -> None:
        """One denoising step on the slot's buffers; advances the slot's device step counter."""
        index = slot.index
        s, a, b, c, d = slot.coefficients.index_select(0, index)[0].unbind()
        if slot.current is not None:
            torch.index_select(slot.table, 0, index, out=slot.current.unsqueeze(0))
        rows = slot.labels.shape[0]
        timestep = slot.timesteps.index_select(0, index).expand(rows)
        scaled = (slot.x.float() * s).to(slot.x.dtype)
        model_input = torch.cat([scaled, scaled]) if slot.cfg else scaled
        if self.forward is not None:
            output = self.forward(model_input, timestep, slot.labels, slot.current)
        else:
            output = self.pipe.transformer(model_input, timestep=timestep, class_labels=slot.labels).sample
        eps = output[:, : slot.x.shape[1]].float()
        if slot.cfg:
            cond, uncond = eps.chunk(2)
            eps = uncond + slot.guidance * (cond - uncond)
        following = a * slot.x.float() + b * eps + c * slot.x_prev.float() + d * slot.eps_prev.float()
        slot.x_prev.copy_(slot.x)
        slot.eps_prev.copy_(eps)
        slot.x.copy_(following)
        index.add_(1)

    def _decode(self, slot: Slot) -> None:
        """DiTPipeline's decode (scaling, post-quant conv, decoder, [0, 1]) into the slot's image buffer. The
        decoder's forward is called directly: its forward pre-hooks (timers) run outside the graph, in `sample`."""
        vae = self.pipe.vae
        latents = 1 / vae.config.scaling_factor * slot.x
        if getattr(vae, "post_quant_conv", None) is not None:
            latents = vae.post_quant_conv(latents)
        samples = vae.decoder.forward(latents)
        slot.image.copy_((samples / 2 + 0.5).clamp(0, 1))

    # -- running ------------------------------------------------------------------------------------------------
    def _load(self, slot: Slot, class_labels: list[int], guidance_scale: float, generator) -> None:
        """Per-request inputs into the slot: labels (+ null class), guidance, initial noise, zeroed history."""
        pipe, device = self.pipe, slot.x.device
        labels = torch.tensor(class_labels, dtype=torch.long)
        if slot.cfg:
            labels = torch.cat([labels, torch.full_like(labels, NULL_CLASS_ID)])
        slot.labels.copy_(labels)
        slot.guidance.fill_(guidance_scale)
        noise = randn_tensor(tuple(slot.x.shape), generator=generator, device=device, dtype=pipe.transformer.dtype)
        slot.x.copy_(noise)
        slot.x_prev.zero_()
        slot.eps_prev.zero_()
        slot.index.zero_()

    def sample(self, class_labels: list[int], guidance_scale: float, generator, steps: int) -> torch.Tensor:
        """Images in [0, 1] (a view of the slot's buffer: copy it before the next call)."""
        self.check(guidance_scale)
        slot = self.slot(len(class_labels), guidance_scale, steps)
        # The transformer may be shared (an app keeps eager and compiled siblings): its tables serve only this call.
        conditioning.activate(self.tables, slot.current)
        try:
            slot.labels.zero_()  # valid ids for the warm-up runs of a first capture
            self._graphs(slot)
            self._load(slot, class_labels, guidance_scale, generator)
            self._run(slot, "fill")
            for _ in self.pipe.progress_bar(range(steps)):
                self._run(slot, "step")
        finally:
            conditioning.activate(self.tables, None)
        decoder = self.pipe.vae.decoder
        for hook in list(decoder._forward_pre_hooks.values()):  # what a decoder call would run first (timers)
            hook(decoder, (slot.x,))
        self._run(slot, "decode")
        return slot.image

    def _run(self, slot: Slot, name: str) -> None:
        if slot.graphs:
            slot.graphs[name].replay()
        else:
            {"fill": self._fill, "step": self._step, "decode": self._decode}[name](slot)

    def replayer(self, batch: int, guidance_scale: float, steps: int, which: str = "forward"):
        """A callable replaying one captured graph of an already captured request shape — "forward" (the transformer
        alone, as the step runs it) or "step" (the whole first step) — for timing and profiling; None without
        graphs or before that shape ran."""
        key = (batch, guidance_scale > 1, steps, scheduler_key(self.pipe.scheduler))
        slot = self.slots.get(key)
        if slot is None or not slot.graphs:
            return None
        if which == "step":
            return slot.step_replay()
        conditioning.activate(self.tables, slot.current)  # the forward as the step runs it (no recompile)
        try:
            forward = self.pipe.transformer
            if self.forward is not None:  # the ahead-of-time forward, called as the transformer is

                def forward(hidden_states, timestep, class_labels):
                    return self.forward(hidden_states, timestep, class_labels, slot.current)

            return slot.forward_replay(forward, self.pool)
        finally:
            conditioning.activate(self.tables, None)


class CapturedDiTPipeline(DiTPipeline):
    """A DiTPipeline that samples through its `StepSampler` when it can; `last_path` names the path taken."""

    sampler: StepSampler | None = None
    last_path: str = "pipeline"

    @classmethod
    def wrap(cls, pipe: DiTPipeline, *, graphs: bool = True) -> CapturedDiTPipeline:
        """A captured twin of `pipe`: the same transformer, VAE, scheduler and labels (nothing is copied)."""
        id2label = dict(pipe.config.get("id2label") or {}) or None
        twin = cls(transformer=pipe.transformer, vae=pipe.vae, scheduler=pipe.scheduler, id2label=id2label)
        if id2label:
            twin.register_to_config(id2label=id2label)
        twin._progress_bar_config = dict(getattr(pipe, "_progress_bar_config", {}))
        twin.sampler = StepSampler(twin, graphs=graphs)
        return twin

    @torch.no_grad()
    def __call__(
        self,
        class_labels: list[int],
        guidance_scale: float = 4.0,
        generator=None,
        num_inference_steps: int = 50,
        output_type: str | None = "pil",
        return_dict: bool = True,
    ):
        try:
            images = self.sampler.sample(list(class_labels), guidance_scale, generator, num_inference_steps)
        except NotCapturable as exc:
            self.last_path = f"pipeline ({exc})"
            return super().__call__(
                class_labels, guidance_scale, generator, num_inference_steps, output_type, return_dict
            )
        sampler = self.sampler
        self.last_path = "step-graph" if sampler.graphs and not sampler.failure else "step"
        if sampler.failure:
            self.last_path += f" (graphs failed: {sampler.failure})"
        if output_type == "pt":
            samples = images.clone()
        else:
            samples = images.cpu().permute(0, 2, 3, 1).float().numpy()
            samples = self.numpy_to_pil(samples) if output_type == "pil" else np.asarray(samples)
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=samples) if return_dict else (samples,)
