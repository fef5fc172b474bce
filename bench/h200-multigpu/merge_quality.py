"""Merge quality.json files of `dit_demo.embedded.evaluate` runs that split the guidance values between
processes (one GPU each) into one table; targets are re-checked on the merged rows.
Usage (from the project root): python merge_quality.py OUT_DIR A/quality.json B/quality.json ..."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))
from dit_demo.embedded.evaluate import check_targets, to_markdown  # noqa: E402

out = Path(sys.argv[1])
parts = [json.loads(Path(p).read_text()) for p in sys.argv[2:]]
rows = [r for p in parts for r in p["rows"]]
order = {r: i for i, r in enumerate(dict.fromkeys(r["recipe"] for r in rows))}
rows.sort(key=lambda r: (order[r["recipe"]], r["guidance"]))
for r in rows:  # JSON null = infinite PSNR (the reference against itself)
    if r.get("psnr_vs_fp", 0) is None:
        r["psnr_vs_fp"] = float("inf")
meta = dict(parts[0]["meta"])
meta["wall_s"] = [p["meta"]["wall_s"] for p in parts]
meta["parts"] = [p["meta"] for p in parts]
report = {
    "meta": meta,
    "rows": rows,
    "real_baseline": next((p["real_baseline"] for p in parts if p.get("real_baseline")), None),
}
report["targets"] = check_targets(rows)
out.mkdir(parents=True, exist_ok=True)
markdown = to_markdown(report)
(out / "quality.md").write_text(markdown)
for r in rows:
    if r.get("psnr_vs_fp") == float("inf"):
        r["psnr_vs_fp"] = None
(out / "quality.json").write_text(json.dumps(report, indent=2) + "\n")
print(markdown)
