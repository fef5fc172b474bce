"""Channel smoothing for the w8a8 recipes (`int8-a8-smooth`): per-channel scales folded into DiT's own parameters.

Static per-tensor activation scales lose the small channels of a tensor whose channels have very different ranges.
SmoothQuant-style smoothing divides such a tensor by a per-channel scale `s` and multiplies the weights that consume
it by `s`, which leaves the model's function unchanged. In a DiT block most of these scales fold *exactly* into
parameters that already exist (DiTAS does the same for the first four):

    site      smoothed tensor                 divided by s in                      multiplied by s in
    qkv_in    input of to_q / to_k / to_v     adaLN shift/scale rows (norm1.linear) to_q, to_k, to_v columns
    fc1_in    input of ff.net.0.proj          adaLN shift/scale rows of the MLP     ff.net.0.proj columns
    out_in    input of to_out.0 (= to_v out)  to_v rows and bias                    to_out.0 columns
    out_out   output of to_out.0              to_out.0 rows and bias                adaLN gate rows (gate_msa)
    fc2_out   output of ff.net.2              ff.net.2 rows and bias                adaLN gate rows (gate_mlp)
    fc2_in    input of ff.net.2 (after GELU)  a stored per-channel scale (ChannelScale in ff.net.1), not exact
                                              to fold                               ff.net.2 columns

The block's LayerNorms have no weights: the adaLN modulation `LN(x) * (1 + scale) + shift` divided by `s` is
`LN(x) * (1 + scale') + shift'` with `shift' = shift / s` and `scale' = (1 + scale) / s - 1`, both still linear in
the conditioning, so the rows (and biases) of `norm1.linear` absorb it. The gates multiply the attention and MLP
outputs channel by channel, so a per-channel scale on those outputs folds into the gate rows: the outputs are then
quantized per tensor but effectively with one scale per channel.

Every plan is kept on the transformer (`smoothing_plan`) and saved next to quanto's files (`smoothing.safetensors`):
only `fc2_in` is needed to rebuild the model, the rest documents the fold (and lets `layer-errors` rebuild the
smoothed full-precision twin). How the scales are chosen lives in `smoothing_search`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from dit_demo.errors import CheckpointError, InvalidRequestError

SMOOTHING_NAME = "smoothing.safetensors"
PLAN_ATTRIBUTE = "smoothing_plan"  # dict[str, Tensor] on a smoothed transformer: "transformer_blocks.3.fc1_in" → s


@dataclass(frozen=True)
class Site:
    """One smoothable tensor of a DiT block (names relative to the block)."""

    key: str
    kind: str  # "input": the layers' input is smoothed; "output": the layer's output
    layers: tuple[str, ...]  # the linears whose input (or output) is divided by s
    fold: str  # modulation | value | stored | gate
    chunks: tuple[int, ...] = ()  # adaLN chunks (shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp)


SITES: tuple[Site, ...] = (
    Site("qkv_in", "input", ("attn1.to_q", "attn1.to_k", "attn1.to_v"), "modulation", (0, 1)),
    Site("fc1_in", "input", ("ff.net.0.proj",), "modulation", (3, 4)),
    Site("out_in", "input", ("attn1.to_out.0",), "value"),
    Site("fc2_in", "input", ("ff.net.2",), "stored"),
    Site("out_out", "output", ("attn1.to_out.0",), "gate", (2,)),
    Site("fc2_out", "output", ("ff.net.2",), "gate", (5,)),
)
SITE_BY_KEY = {site.key: site for site in SITES}

# For every activation-quantized linear of a block: which site's scale divides its input and its output
# (what the static activation scales of a smoothed model must be measured on).
DIVISORS: dict[str, tuple[str | None, str | None]] = {
    "attn1.to_q": ("qkv_in", None),
    "attn1.to_k": ("qkv_in", None),
    "attn1.to_v": ("qkv_in", "out_in"),
    "attn1.to_out.0": ("out_in", "out_out"),
    "ff.net.0.proj": ("fc1_in", None),
    "ff.net.2": ("fc2_in", "fc2_out"),
}


class ChannelScale(torch.nn.Module):
    """`x * inv_scale` per channel, in front of ff.net.2 (replaces the block's `Dropout(p=0)`, kept inside)."""

    def __init__(self, inv_scale: torch.Tensor, inner: torch.nn.Module | None = None):
        super().__init__()
        self.inner = inner if inner is not None else torch.nn.Identity()
        self.register_buffer("inv_scale", inv_scale, persistent=False)  # saved in smoothing.safetensors instead

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * self.inv_scale

    def extra_repr(self) -> str:
        return f"channels={self.inv_scale.numel()}"


def site_name(block: int, key: str) -> str:
    return f"transformer_blocks.{block}.{key}"


def split_site_name(name: str) -> tuple[int, Site]:
    prefix, block, key = name.split(".")
    if prefix != "transformer_blocks" or key not in SITE_BY_KEY:
        raise ValueError(f"not a smoothing site: {name!r}")
    return int(block), SITE_BY_KEY[key]


def check_smoothable(transformer: torch.nn.Module) -> None:
    """Smoothing needs DiT's adaLN-Zero blocks with float (not yet quantized) parameters."""
    blocks = getattr(transformer, "transformer_blocks", None)
    if not blocks:
        raise InvalidRequestError("Smoothing needs a DiT transformer (transformer_blocks with adaLN-Zero).")
    for index, block in enumerate(blocks):
        if getattr(block, "norm_type", None) != "ada_norm_zero" or getattr(block, "attn2", None) is not None:
            raise InvalidRequestError(f"transformer_blocks.{index} is not a DiT adaLN-Zero block: cannot smooth.")
        for layer in ("norm1.linear", *DIVISORS):
            module = block.get_submodule(layer)
            if type(module) is not torch.nn.Linear:
                raise InvalidRequestError(
                    f"transformer_blocks.{index}.{layer} is {type(module).__name__}, not a float nn.Linear: smooth "
                    "before quantizing."
                )


def _chunk(size: int, index: int) -> slice:
    return slice(index * size, (index + 1) * size)


@torch.no_grad()
def _scale_rows(linear: torch.nn.Linear, rows: slice, factor: torch.Tensor, add: torch.Tensor | None = None) -> None:
    """rows of W and b ← (rows · factor) (+ add on the bias), computed in float32."""
    weight = linear.weight.data[rows].float() * factor[:, None]
    linear.weight.data[rows] = weight.to(linear.weight.dtype)
    if linear.bias is not None:
        bias = linear.bias.data[rows].float()
        bias = bias * factor + (add if add is not None else 0.0)
        linear.bias.data[rows] = bias.to(linear.bias.dtype)


@torch.no_grad()
def _scale_columns(linear: torch.nn.Linear, factor: torch.Tensor) -> None:
    linear.weight.data = (linear.weight.data.float() * factor[None, :]).to(linear.weight.dtype)


@torch.no_grad()
def fold_site(block: torch.nn.Module, site: Site, scale: torch.Tensor) -> None:
    """Divide the site's tensor by `scale` and multiply its consumers by it, in place (exact up to rounding)."""
    scale = scale.detach().float().to(block.norm1.linear.weight.device)
    inverse = 1.0 / scale
    width = scale.numel()
    adaln = block.norm1.linear
    if site.fold == "modulation":
        shift, mod = site.chunks
        _scale_rows(adaln, _chunk(width, shift), inverse)
        _scale_rows(adaln, _chunk(width, mod), inverse, add=inverse - 1.0)  # (b + 1) / s - 1
    elif site.fold == "value":
        _scale_rows(block.attn1.to_v, slice(None), inverse)
    elif site.fold == "stored":
        dropout = block.ff.net[1]
        inner = dropout.inner if isinstance(dropout, ChannelScale) else dropout
        if isinstance(dropout, ChannelScale):
            inverse = inverse * dropout.inv_scale.float()
        block.ff.net[1] = ChannelScale(inverse.to(block.ff.net[2].weight.dtype), inner)
    elif site.fold == "gate":
        (gate,) = site.chunks
        _scale_rows(adaln, _chunk(width, gate), scale)
    for layer in site.layers:
        linear = block.get_submodule(layer)
        if site.kind == "input":
            _scale_columns(linear, scale)
        else:
            _scale_rows(linear, slice(None), inverse)


def apply_plan(transformer: torch.nn.Module, plan: Mapping[str, torch.Tensor]) -> None:
    """Fold a whole plan into a float transformer and remember it (`transformer.smoothing_plan`)."""
    check_smoothable(transformer)
    for name, scale in plan.items():
        block, site = split_site_name(name)
        fold_site(transformer.transformer_blocks[block], site, scale)
    merged = dict(getattr(transformer, PLAN_ATTRIBUTE, None) or {})
    for name, scale in plan.items():
        previous = merged.get(name)
        merged[name] = scale.detach().float().cpu() * (previous if previous is not None else 1.0)
    setattr(transformer, PLAN_ATTRIBUTE, merged)


def plan_of(transformer: torch.nn.Module) -> dict[str, torch.Tensor]:
    return dict(getattr(transformer, PLAN_ATTRIBUTE, None) or {})


def folded_modules(plan: Mapping[str, torch.Tensor]) -> list[str]:
    """Modules whose float tensors a fold computed (a save keeps them as they are, never in a narrower dtype)."""
    names = set()
    for name in plan:
        block, site = split_site_name(name)
        prefix = f"transformer_blocks.{block}."
        names.update(prefix + layer for layer in site.layers)
        if site.fold in ("modulation", "gate"):
            names.add(prefix + "norm1.linear")
        elif site.fold == "value":
            names.add(prefix + "attn1.to_v")
    return sorted(names)


def divisor(plan: Mapping[str, torch.Tensor], layer_name: str, side: int) -> torch.Tensor | None:
    """The scale that divides a linear's input (side 0) or output (side 1) in a smoothed model, if any."""
    parts = layer_name.split(".", 2)
    if len(parts) != 3 or parts[0] != "transformer_blocks" or parts[2] not in DIVISORS:
        return None
    key = DIVISORS[parts[2]][side]
    return plan.get(site_name(int(parts[1]), key)) if key else None


def save_plan(transformer: torch.nn.Module, folder: str | os.PathLike) -> Path | None:
    """Write `smoothing.safetensors` next to quanto's files when the transformer was smoothed."""
    plan = plan_of(transformer)
    if not plan:
        return None
    path = Path(folder) / SMOOTHING_NAME
    save_file({k: v.contiguous() for k, v in sorted(plan.items())}, str(path), metadata={"format": "dit_demo"})
    return path


def load_plan(folder: str | os.PathLike) -> dict[str, torch.Tensor] | None:
    path = Path(folder) / SMOOTHING_NAME
    if not path.is_file():
        return None
    try:
        plan = load_file(str(path))
    except Exception as exc:  # safetensors raises several types for a broken file
        raise CheckpointError(f"{path} is truncated or corrupt ({exc}).") from exc
    for name in plan:
        try:
            split_site_name(name)
        except ValueError:
            raise CheckpointError(f"{path} holds an unknown tensor {name!r}.") from None
    return {k: v.clone() for k, v in plan.items()}


def install_plan(model: torch.nn.Module, plan: Mapping[str, torch.Tensor], folder: str | os.PathLike = "") -> None:
    """On a reloaded (already folded) model: put back what is not in its weights — the stored input scales."""
    blocks = getattr(model, "transformer_blocks", [])
    for name, scale in plan.items():
        block, site = split_site_name(name)
        if block >= len(blocks) or (site.fold == "stored" and scale.numel() != blocks[block].ff.net[2].in_features):
            raise CheckpointError(f"{Path(folder) / SMOOTHING_NAME}: {name} does not match this model.")
        if site.fold == "stored":
            # float32 here; the loader's `model.to(dtype)` rounds it exactly as the fold did
            blocks[block].ff.net[1] = ChannelScale(1.0 / scale.float(), blocks[block].ff.net[1])
    setattr(model, PLAN_ATTRIBUTE, {k: v.float() for k, v in plan.items()})
