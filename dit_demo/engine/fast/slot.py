"""The static buffers one captured request shape runs on (see `dit_demo.engine.fast.capture`).

A CUDA graph replays fixed addresses, so everything a step reads or writes lives here, allocated once per
(batch, guidance on/off, steps, sampler): the latent and its one-step history, the labels, the guidance scale,
the sampler's per-step coefficients and timesteps, the device step counter, the conditioning table and the image.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import dataclass

import torch
from diffusers import DiTPipeline

from dit_demo.engine.fast.recurrence import Recurrence


def scheduler_key(scheduler) -> str:
    """Class + configuration: two schedulers with the same key have the same recurrence."""
    config = json.dumps({k: v for k, v in dict(scheduler.config).items() if not k.startswith("_")}, sort_keys=True,
                        default=str)  # fmt: skip
    return f"{type(scheduler).__name__}:{hashlib.sha1(config.encode()).hexdigest()[:12]}"


def image_shape(pipe: DiTPipeline, batch: int) -> tuple[int, int, int, int]:
    config = pipe.vae.config
    size = pipe.transformer.config.sample_size * 2 ** (len(config.block_out_channels) - 1)
    return batch, config.out_channels, size, size


_CAPTURE_STREAMS: dict[int, torch.cuda.Stream] = {}


def capture_stream() -> torch.cuda.Stream:
    """One side stream per GPU for every warm-up and capture: cuBLAS/cuDNN keep a workspace per stream they see
    (tens of MiB each), so a new stream per capture would leak one workspace per graph (seen on the H200: ~175 MB
    per captured benchmark cell, carried into the next cell's memory figures)."""
    index = torch.cuda.current_device()
    if index not in _CAPTURE_STREAMS:
        _CAPTURE_STREAMS[index] = torch.cuda.Stream()
    return _CAPTURE_STREAMS[index]


@torch.no_grad()  # inference only (and a compiled module called with grad enabled would compile a second time)
def capture_graph(fn, pool, reset) -> torch.cuda.CUDAGraph:
    """Warm `fn` up on the capture stream (compile, autotune, cuBLAS handles), then capture one call of it."""
    stream = capture_stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            reset()
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    reset()
    with torch.cuda.graph(graph, pool=pool, stream=stream):
        fn()
    return graph


@dataclass
class Slot:
    cfg: bool
    x: torch.Tensor  # [batch, C, H, W], the latent between steps (the pipeline's first half)
    x_prev: torch.Tensor  # the latent one step earlier
    eps_prev: torch.Tensor  # the guided noise prediction one step earlier (float32)
    labels: torch.Tensor  # [rows] class ids, the null class appended under guidance
    guidance: torch.Tensor  # [] float32
    index: torch.Tensor  # [1] int64: the step the next replay runs
    timesteps: torch.Tensor  # [steps]
    coefficients: torch.Tensor  # [steps, 5] float32: s, a, b, c, d
    table: torch.Tensor | None  # [steps, rows, columns] conditioning of every step
    current: torch.Tensor | None  # [rows, columns] the step's row of `table`, read by the transformer
    image: torch.Tensor  # [batch, 3, h, w] in [0, 1], the VAE's dtype
    graphs: dict | None = None
    forward_graph: torch.cuda.CUDAGraph | None = None

    @classmethod
    def create(
        cls, pipe: DiTPipeline, batch: int, cfg: bool, recurrence: Recurrence, current: torch.Tensor | None
    ) -> Slot:
        transformer = pipe.transformer
        config = transformer.config
        device, dtype = transformer.device, transformer.dtype
        latent = (batch, config.in_channels, config.sample_size, config.sample_size)
        rows = batch * (2 if cfg else 1)
        steps = recurrence.steps
        table = None
        if current is not None:
            table = torch.zeros(steps, rows, current.shape[1], device=device, dtype=dtype)
        return cls(
            cfg=cfg,
            x=torch.zeros(latent, device=device, dtype=dtype),
            x_prev=torch.zeros(latent, device=device, dtype=dtype),
            eps_prev=torch.zeros(latent, device=device, dtype=torch.float32),
            labels=torch.zeros(rows, device=device, dtype=torch.long),
            guidance=torch.ones((), device=device, dtype=torch.float32),
            index=torch.zeros(1, device=device, dtype=torch.long),
            timesteps=recurrence.timesteps.to(device),
            coefficients=recurrence.coefficients.to(device=device, dtype=torch.float32),
            table=table,
            current=current,
            image=torch.zeros(image_shape(pipe, batch), device=device, dtype=pipe.vae.dtype),
        )

    def forward_replay(self, transformer: torch.nn.Module, pool):
        """A replay of the transformer forward alone on this slot's inputs, from its own CUDA graph (captured on
        first use; the caller serves the conditioning tables, as the step does)."""
        if self.forward_graph is None:
            rows = self.labels.shape[0]
            model_input = torch.cat([self.x, self.x]) if self.cfg else self.x.clone()
            timestep = self.timesteps[:1].expand(rows)
            self.forward_graph = capture_graph(
                lambda: transformer(model_input, timestep=timestep, class_labels=self.labels), pool, lambda: None
            )
        return self.forward_graph.replay

    def step_replay(self):
        """A replay of the first denoising step (the step counter reset before each)."""
        step = self.graphs["step"]

        def replay() -> None:
            self.index.zero_()
            step.replay()

        return replay


def median_replay_seconds(replay, runs: int) -> float:
    """Median GPU seconds of `replay()` by CUDA events, after 3 untimed replays."""
    times = []
    for _ in range(runs + 3):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return statistics.median(times[3:])
