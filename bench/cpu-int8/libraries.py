"""Which library runs int8 GEMMs fastest on this CPU? DiT-XL/2's MLP (1152 → 4608 → GELU → 1152) at 512 rows
(one 256² image with CFG), fp32 vs PyTorch's `quantize_dynamic` vs torchao's int8 dynamic paths, interleaved rounds.

Needs torchao (not a project dependency): `pip install torchao==0.18.0`, then
`python bench/cpu-int8/libraries.py --out bench/cpu-int8/libraries.json`. The choice it led to is explained in
dit_demo/engine/quant/dynamic.py.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import warnings

import torch

from dit_demo.engine.machine import environment
from dit_demo.engine.timing import interleaved, speed_verdict


def variants(base: torch.nn.Module, sample: torch.Tensor) -> dict[str, torch.nn.Module]:
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    built = {"fp32": base}
    built["torch.ao quantize_dynamic"] = torch.ao.quantization.quantize_dynamic(
        copy.deepcopy(base), {torch.nn.Linear}, dtype=torch.qint8
    )
    eager = copy.deepcopy(base)
    quantize_(eager, Int8DynamicActivationInt8WeightConfig())
    built["torchao Int8DynamicActivationInt8Weight (eager)"] = eager
    built["torchao Int8DynamicActivationInt8Weight + torch.compile"] = torch.compile(copy.deepcopy(eager))
    exported = torch.export.export(copy.deepcopy(base), (sample,)).module()
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config(is_dynamic=True))
    prepared = prepare_pt2e(exported, quantizer)
    prepared(sample)
    built["torchao PT2E X86InductorQuantizer (dynamic) + torch.compile"] = torch.compile(convert_pt2e(prepared))
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="libraries.json")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    base = torch.nn.Sequential(torch.nn.Linear(1152, 4608), torch.nn.GELU(), torch.nn.Linear(4608, 1152)).eval()
    sample = torch.randn(args.rows, 1152)
    with torch.inference_mode():
        built = variants(base, sample)
        reference = base(sample)
        errors = {name: (m(sample) - reference).abs().max().item() for name, m in built.items()}
        spreads = interleaved({n: (lambda m=m: m(sample)) for n, m in built.items()}, rounds=args.rounds)
    import torchao

    record = {
        "environment": environment(torch.device("cpu"), 1),
        "torchao": torchao.__version__,
        "load_average": os.getloadavg(),
        "rows": args.rows,
        "threads": args.threads,
        "results": {
            name: {
                **spreads[name].to_dict(),
                "max_abs_error": errors[name],
                "vs_fp32": None if name == "fp32" else speed_verdict(spreads["fp32"], spreads[name]).__dict__,
            }
            for name in built
        },
    }
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2)
    for name, row in record["results"].items():
        ratio = f"{row['vs_fp32']['ratio']:.2f}× fp32" if row["vs_fp32"] else "reference"
        spread = f"{row['min_s'] * 1e3:.1f}–{row['max_s'] * 1e3:.1f}"
        print(f"{name:60s} {row['median_s'] * 1e3:8.1f} ms ({spread})  {ratio}")


if __name__ == "__main__":
    main()
