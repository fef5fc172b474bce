"""Pixel equality of two gallery runs saved by gallery_timed.py --npy: per recipe, max |a - b| over every pixel,
how many images differ, and PSNR of the differing ones. When one run covered a prefix of the other's jobs (the
first K classes, same seeds and batch size: the same batches), the common prefix is compared.
Usage: python compare_runs.py DIR_A DIR_B OUT.json   (DIR = gallery_timed.py --npy folder)
       python compare_runs.py A/hashes.json B/hashes.json OUT.json   (runs on different machines: equal or not)"""

import json
import math
import sys
from pathlib import Path

import numpy as np

a_dir, b_dir, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
result = {"a": str(a_dir), "b": str(b_dir), "recipes": {}}
if a_dir.suffix == ".json":
    ha, hb = json.loads(a_dir.read_text()), json.loads(b_dir.read_text())
    n = min(len(ha["jobs"]), len(hb["jobs"]))
    result["jobs_match"] = ha["jobs"][:n] == hb["jobs"][:n]
    for recipe, sums in ha["sha256"].items():
        other = hb["sha256"].get(recipe, [])
        same = [x == y for x, y in zip(sums[:n], other[:n])]
        result["recipes"][recipe] = {
            "images_compared": len(same),
            "identical": bool(same) and all(same),
            "images_differing": same.count(False),
        }
        print(recipe, json.dumps(result["recipes"][recipe]))
    out.write_text(json.dumps(result, indent=2) + "\n")
    sys.exit(0)
for a_file in sorted(a_dir.glob("*.npy")):
    a = np.load(a_file)
    b = np.load(b_dir / a_file.name)
    entry = {"shape_a": list(a.shape), "shape_b": list(b.shape)}
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    if a.shape == b.shape:
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        per_image = diff.reshape(len(a), -1).max(1)
        differing = np.flatnonzero(per_image)
        mse = (diff[differing].astype(np.float64) ** 2).reshape(len(differing), -1).mean(1) if len(differing) else []
        entry.update(
            {
                "images_compared": int(n),
                "identical": bool(not diff.any()),
                "max_abs_pixel_diff": int(diff.max()),
                "images_differing": int(len(differing)),
                "pixels_differing": int((diff > 0).sum()),
                "min_psnr_db_of_differing": (
                    round(min(10 * math.log10(255.0**2 / m) for m in mse), 3) if len(differing) else None
                ),
            }
        )
    result["recipes"][a_file.stem] = entry
    print(a_file.stem, json.dumps(entry))
out.write_text(json.dumps(result, indent=2) + "\n")
