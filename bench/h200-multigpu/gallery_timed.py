"""`python -m dit_demo.gallery` (commit 788ead4's layout + its patch, see README.md) with what the gallery
does not record itself: phase times, the gather time, per-process peak memory, and every image as .npy so two runs
can be compared pixel by pixel. Run it from the project root, under `accelerate launch` like the gallery:

    accelerate launch --num_processes 1 ../bench/h200-multigpu/gallery_timed.py --npy DIR [gallery args]

It changes nothing in the gallery: it wraps module attributes the gallery looks up at call time
(`build_reference`, `build_variants`, `generate_share`, `assemble`, `accelerate.utils.gather_object`).
Writes the gallery's files to --out, plus --out/timing.json, --out/hashes.json (SHA-256 of every image's RGB bytes,
job order: runs on different machines can be compared) and DIR/<recipe>.npy (uint8, N×H×W×3, job order).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import accelerate.utils
import numpy as np
import torch

START = time.perf_counter()
sys.path.insert(0, str(Path.cwd()))

if os.environ.get("GALLERY_SHARE_ONE_GPU") == "1":
    # Several processes on ONE GPU (a 1-GPU machine): NCCL refuses two ranks on one device, so the process group is
    # gloo (gathers go through host memory). Initialising accelerate's PartialState singleton here, before the
    # gallery's make_state() asks for it, is the only change; both ranks use cuda:0 (LOCAL_RANK 0: accelerate's
    # barrier allocates on cuda:LOCAL_RANK). RANK and WORLD_SIZE, which the process group uses, are untouched.
    os.environ["LOCAL_RANK"] = "0"
    os.environ.setdefault("ACCELERATE_TORCH_DEVICE", "cuda:0")
    from accelerate import PartialState

    if os.environ.get("GALLERY_SIMULATE_CUDA") == "1":  # CPU-only dry run of this path: pretend CUDA exists here
        _available = torch.cuda.is_available
        torch.cuda.is_available = lambda: True
        PartialState(backend="gloo")
        torch.cuda.is_available = _available
    else:
        PartialState(backend="gloo")

from dit_demo import gallery  # noqa: E402

PHASES: dict[str, float] = {}
GATHERS: list[dict] = []


def timed(name, fn):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            PHASES[name] = round(PHASES.get(name, 0.0) + time.perf_counter() - t0, 4)

    return wrapper


_generate_share = gallery.generate_share


def generate_share(variants, batches, config, process_index=0, progress=True):
    """The gallery's own share loop; adds this process's memory figures to its timing dict (which is gathered)."""
    ref = next(iter(variants.values()))
    device = ref.device
    allocated_before = torch.cuda.memory_allocated(device) if device.type == "cuda" else None
    records, timing = _generate_share(variants, batches, config, process_index, progress)
    peaks: dict[str, int] = {}
    for record in records:
        peaks[record["recipe"]] = max(peaks.get(record["recipe"], 0), int(record["metrics"]["peak_memory_bytes"]))
    timing["peak_memory_bytes_by_recipe"] = peaks
    timing["peak_memory_bytes"] = max(peaks.values()) if peaks else None
    timing["memory_kind"] = records[0]["metrics"]["memory_kind"] if records else None
    timing["allocated_after_build_bytes"] = allocated_before
    if device.type == "cuda":
        timing["reserved_at_end_bytes"] = int(torch.cuda.memory_reserved(device))
        timing["max_reserved_bytes"] = int(torch.cuda.max_memory_reserved(device))
    return records, timing


_real_gather = accelerate.utils.gather_object


def gather_object(obj):
    """Barrier first (time spent waiting for the slower process), then the gather itself."""
    from accelerate import PartialState

    state = PartialState()
    t0 = time.perf_counter()
    state.wait_for_everyone()
    t1 = time.perf_counter()
    out = _real_gather(obj)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t2 = time.perf_counter()
    size = sum(a.nbytes for r in obj if isinstance(r, dict) and isinstance(r.get("images"), list) for a in r["images"])
    GATHERS.append(
        {
            "items_sent": len(obj),
            "image_bytes_sent": size,
            "barrier_wait_s": round(t1 - t0, 4),
            "gather_s": round(t2 - t1, 4),
        }
    )
    return out


gallery.build_reference = timed("load_reference_s", gallery.build_reference)
gallery.build_variants = timed("quantize_calibrate_s", gallery.build_variants)
gallery.generate_share = timed("generate_share_s", generate_share)
gallery.assemble = timed("assemble_metrics_s", gallery.assemble)
accelerate.utils.gather_object = gather_object


def _backend() -> str | None:
    from accelerate import PartialState

    return PartialState().backend


def main(argv: list[str]) -> int:
    npy = None
    if "--npy" in argv:
        i = argv.index("--npy")
        npy = Path(argv[i + 1])
        argv = argv[:i] + argv[i + 2 :]
    args = gallery.build_parser().parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    config = gallery.config_from_args(args)
    t0 = time.perf_counter()
    result = gallery.run_gallery(config, progress=not args.no_progress)
    run_s = time.perf_counter() - t0
    if result is None:  # not the main process
        return 0
    t0 = time.perf_counter()
    paths = gallery.write_gallery(result, args.out)
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    hashes = {
        recipe: [hashlib.sha256(np.ascontiguousarray(im.convert("RGB")).tobytes()).hexdigest() for im in images]
        for recipe, images in result.images.items()
    }
    jobs = [[j["class_id"], j["seed"]] for j in result.jobs]
    (Path(args.out) / "hashes.json").write_text(json.dumps({"jobs": jobs, "sha256": hashes}) + "\n")
    if npy is not None:
        npy.mkdir(parents=True, exist_ok=True)
        for recipe, images in result.images.items():
            np.save(npy / f"{recipe}.npy", np.stack([np.asarray(im.convert("RGB")) for im in images]))
    npy_s = time.perf_counter() - t0
    timing = {
        "num_processes": result.num_processes,
        "shared_one_gpu": os.environ.get("GALLERY_SHARE_ONE_GPU") == "1",
        "torch_distributed_backend": _backend(),
        "images_per_s_all_recipes": result.images_per_s,
        "images_per_s_by_recipe": {r: row["images_per_s"] for r, row in result.recipe_rows.items()},
        "main_process_phases_s": {
            **PHASES,
            "run_gallery_s": round(run_s, 4),
            "write_gallery_s": round(write_s, 4),
            "save_npy_s": round(npy_s, 4),
            "script_total_s": round(time.perf_counter() - START, 4),
        },
        "main_process_gathers": GATHERS,
        "processes": result.processes,
    }
    (Path(args.out) / "timing.json").write_text(json.dumps(timing, indent=2) + "\n")
    rows = list(result.recipe_rows.values())
    print(gallery.markdown_table(rows, gallery.metric_columns(result.digits)))
    print(json.dumps({k: timing[k] for k in ("num_processes", "images_per_s_by_recipe", "main_process_phases_s")}))
    print(json.dumps(GATHERS))
    print(f"wrote {paths['md']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
