"""What stock diffusers needs to load a saved transformer: its `quantization_config`, or a loud refusal.

diffusers' Quanto backend (`quant_method: quanto`, deprecated, removal planned for diffusers 1.0) rebuilds a model by
replacing every `nn.Linear` whose *local* name is not in `modules_to_not_convert` with a weight-only `QLinear`, then
loads quanto's tensors into it. That reproduces a recipe exactly when (a) only Linear layers are quantized, (b) only
weights are, with one dtype diffusers knows, and (c) the kept Linear layers' local names do not also name quantized
ones. Everything else (calibrated activation scales above all) gets a `quant_method` diffusers does not know, so
`DiTPipeline.from_pretrained` raises `ValueError: Unknown quantization type, got <that text>` — the text says how to
load the folder — instead of silently running random or wrong weights.
"""

from __future__ import annotations

import torch
from optimum.quanto import quantization_map

STOCK_WEIGHT_DTYPES = {
    "qint8": "int8",
    "qfloat8": "float8",
    "qfloat8_e4m3fn": "float8",
    "qint4": "int4",
    "qint2": "int2",
}
LOADER_HINT = (
    "dit-quanto-demo: this folder holds {what}, which stock diffusers cannot represent; load it with "
    "dit_demo.engine.model.loading.load_pipeline(folder) from the dit-quanto-demo project (the model card links "
    "its source)"
)


def _weights_name(entry: dict) -> str:
    return str(entry.get("weights", "none"))


def _refusal(what: str) -> dict:
    return {"quant_method": LOADER_HINT.format(what=what), "loader": "dit_demo.engine.model.loading.load_pipeline"}


def stock_quantization_config(transformer: torch.nn.Module) -> dict:
    """The `quantization_config` for `transformer/config.json` of a quantized DiT (see the module docstring)."""
    qmap = quantization_map(transformer)
    activations = sorted({str(v.get("activations", "none")) for v in qmap.values()} - {"none"})
    if activations:
        return _refusal(f"calibrated static activation scales ({', '.join(activations)})")
    weights = {_weights_name(v) for v in qmap.values()}
    if len(weights) != 1 or next(iter(weights)) not in STOCK_WEIGHT_DTYPES:
        return _refusal(f"weights of type {sorted(weights)}")
    modules = dict(transformer.named_modules())
    if any(not isinstance(modules.get(name), torch.nn.Linear) for name in qmap):
        return _refusal("quantized layers other than nn.Linear")
    linears = [name for name, module in modules.items() if isinstance(module, torch.nn.Linear)]
    kept_local = sorted({name.rsplit(".", 1)[-1] for name in linears if name not in qmap})
    quantized_local = {name.rsplit(".", 1)[-1] for name in qmap}
    if set(kept_local) & quantized_local:
        shared = sorted(set(kept_local) & quantized_local)
        return _refusal(
            f"a layer choice stock diffusers cannot express (kept and quantized layers share names {shared})"
        )
    return {
        "quant_method": "quanto",
        "weights_dtype": STOCK_WEIGHT_DTYPES[next(iter(weights))],
        "modules_to_not_convert": kept_local,
    }


def is_stock_loadable(config: dict) -> bool:
    return (config.get("quantization_config") or {}).get("quant_method") == "quanto"
