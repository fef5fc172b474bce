#!/usr/bin/env bash
# Issue 25's end-to-end tables on the H200 (kind nvidia-h200; one call ≤ 560 s), from the repo root, wheels in .whl
# (DESIGN.md §5). Each argument is one e2e.py --setting (model:batch:deadline_s:variants), run in one process:
#   OUT=... bash bench/h200-w8a16/table.sh dit-xl-2-256-random:1:380:bf16,fp8-a8,int8,int8-a8,fp8-a8-tensorwise
# CUDA_TESTS=1 first runs the fp8 layer's CUDA tests (row-wise and tensor-wise epilogues against their references).
set -u -o pipefail
LIMIT=${LIMIT:-550}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 DIFFUSERS_VERBOSITY=error TQDM_DISABLE=1 TORCH_LOGS=${TORCH_LOGS-graph_breaks}
mkdir -p "$OUT"
T0=$(date +%s)
el() { echo "=== [t+$(($(date +%s) - T0))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site:$PWD || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv | tee "$OUT/gpu.txt"
if [ "${CUDA_TESTS:-0}" = 1 ]; then
  el "CUDA tests of the fp8 layer"
  timeout 120 python3 -m pytest -q -p no:cacheprovider -m cuda tests/engine/fast/test_fp8.py 2>&1 \
    | tee "$OUT/pytest-cuda.txt" | tail -n 8
fi
REMAIN=$((LIMIT - ($(date +%s) - T0)))
el "end to end (${REMAIN} s left): $*"
ARGS=()
for s in "$@"; do ARGS+=(--setting "$s"); done
timeout "$((REMAIN - 3))" python3 bench/h200-w8a16/e2e.py --out "$OUT" --rounds 7 --profile "${ARGS[@]}" 2>&1 \
  | tee "$OUT/e2e.log" | grep -E "^\[e2e\]|Error|error" | cut -c1-400 | tail -n 40
python3 - "$OUT/results.json" <<'PY' || true
import json, sys
for s in json.load(open(sys.argv[1]))["settings"]:
    for n, c in s.get("cells", {}).items():
        r = c.get("vs_bf16_compiled", {})
        print(f"{s['model']} b{s['batch']} {n:18s} ratio {r.get('ratio')} ({r.get('low')}-{r.get('high')}) "
              f"psnr {c.get('psnr_db')} peak {c.get('peak_memory_bytes')} {c.get('fp8_epilogue')} "
              f"{c.get('skipped', '')}{c.get('error', '')}")
PY
el "done"
