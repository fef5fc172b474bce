"""Where int8-dynamic loses image PSNR on a small model (issue 27): the same seeds sampled with fp32 and with
int8-dynamic variants that differ in one thing each — which Linear layers stay fp32, per-channel instead of per-tensor
weights, and 8-bit instead of FBGEMM's 7-bit activations (`reduce_range`) — paired PSNR/SSIM against fp32. (The
final projection and the patch embedding are fp32 in every variant: the recipes' `DEFAULT_EXCLUDE`.)

    python bench/cpu-int8/dynamic_psnr.py --source mnist --out bench/cpu-int8/mnist-psnr

One thread, 16 images (digits 0–9 cycling, seeds 0–15), 25 DPM steps, guidance 4. A diagnosis, not a recipe: the
variants that change the kernels' arithmetic are set up by patching torch.ao for the duration of one build only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import warnings
from pathlib import Path

import torch
import torch.ao.quantization as tq
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

from dit_demo.compare import image_quality
from dit_demo.engine.generate import build_reference, build_variant, generate
from dit_demo.engine.machine import environment
from dit_demo.engine.request import SamplingRequest
from dit_demo.engine.timing import machine_load

# (name, Linear-name patterns kept fp32, weight qconfig, 8-bit activations)
VARIANTS = (
    ("int8-dynamic (as shipped)", (), "per-tensor", False),
    ("weights per channel", (), "per-channel", False),
    ("8-bit activations (reduce_range off)", (), "per-tensor", True),
    ("conditioning fp32 (timestep + adaLN)", ("*timestep_embedder*", "*norm1.linear"), "per-tensor", False),
    ("attention projections fp32", ("*attn1.to_*",), "per-tensor", False),
    ("MLP fp32", ("*ff.net*",), "per-tensor", False),
)


def _forward_8bit(self, x):
    """`torch.ao.nn.quantized.dynamic.Linear.forward` with `reduce_range=False` (full 8-bit activation range)."""
    y = torch.ops.quantized.linear_dynamic(x, self._packed_params._packed_params, reduce_range=False)
    return y.to(x.dtype)


@contextlib.contextmanager
def patched(weights: str, full_range: bool):
    qconfig, forward = tq.default_dynamic_qconfig, DynamicLinear.forward
    if weights == "per-channel":
        tq.default_dynamic_qconfig = tq.per_channel_dynamic_qconfig
    if full_range:
        DynamicLinear.forward = _forward_8bit
    try:
        yield
    finally:
        tq.default_dynamic_qconfig, DynamicLinear.forward = qconfig, forward


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="mnist")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--guidance", type=float, default=4.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    reference = build_reference(args.source, device="cpu", dtype=torch.float32)
    n = args.images
    request = SamplingRequest(
        labels=tuple(str(i % 10) for i in range(n)), seeds=tuple(range(n)), steps=25, guidance_scale=args.guidance
    )
    fp32 = generate(reference, request).images
    rows = []
    for name, keep_fp32, weights, full_range in VARIANTS:
        with patched(weights, full_range):
            variant = build_variant(reference, "int8-dynamic", exclude=keep_fp32)
            images = generate(variant, request).images
        row = {"variant": name, "kept_fp32": list(keep_fp32), "weights": weights, "activation_bits": 8 if full_range
               else 7, **image_quality(fp32, images), "load": machine_load()}  # fmt: skip
        rows.append(row)
        print(row, flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"environment": environment(torch.device("cpu"), num_processes=1), "config": vars(args), "variants": rows}
    (out / "results.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    lines = [
        f"{args.source}: int8-dynamic variants vs fp32, {n} images, 25 DPM steps, guidance {args.guidance:g}, "
        f"1 thread ({record['environment'].get('cpu', '?')}, torch {record['environment'].get('torch', '?')})",
        "",
        "| variant | layers kept fp32 | weights | activation bits | PSNR vs fp32 dB | SSIM |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['variant']} | {', '.join(r['kept_fp32']) or '—'} | {r['weights']} | "
                     f"{r['activation_bits']} | {r['psnr_db']} | {r['ssim']} |")  # fmt: skip
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
