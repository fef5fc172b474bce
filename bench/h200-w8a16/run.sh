#!/usr/bin/env bash
# Issue 25's H200 device call (kind nvidia-h200, ONE call of at most 540 s), from the repo root, wheels in .whl
# (DESIGN.md §5):  OUT=... bash bench/h200-w8a16/run.sh
#   1. the CUDA tests of the int8 weight-only layer on the Triton kernel vs plain ops (XL/2 token shapes)
#   2. gemm.py: correctness vs fp32 and GEMM µs per XL/2 shape (bf16 cuBLAS / cast+mm / W8A16), CUDA graphs;
#      its kernel_table.json is the per-shape choice the end-to-end run's int8 uses (DIT_DEMO_KERNEL_TABLE)
#   3. e2e.py: bf16 vs int8 (per-shape W8A16) vs int8 (cast + cuBLAS) vs fp8-a8, compiled + step graphs + fused
#      QKV, interleaved rounds, 256² b1 then 512² b1, each with a deadline inside the call's limit (E2E=0 skips it)
# CPU dry run of step 3's plumbing: PYTHONPATH=$PWD TORCH_COMPILE_DISABLE=1 .venv/bin/python bench/h200-w8a16/e2e.py \
#   --out /tmp/x --setting tiny-random:1:100 --rounds 2 --device cpu
set -u -o pipefail
LIMIT=${LIMIT:-530}  # seconds this script may take in all (the call's timeout_s is 540)
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 DIFFUSERS_VERBOSITY=error TQDM_DISABLE=1
mkdir -p "$OUT"
T0=$(date +%s)
el() { echo "=== [t+$(($(date +%s) - T0))s] $*"; }
left() { echo $((LIMIT - ($(date +%s) - T0))); }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site:$PWD || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, triton, diffusers, optimum.quanto as q; print('torch', torch.__version__, 'triton', \
triton.__version__, 'diffusers', diffusers.__version__, 'quanto', q.__version__)" | tee -a "$OUT/gpu.txt"

el "CUDA tests (the int8 weight-only layer on the W8A16 kernel vs plain ops, the token shapes)"
timeout 60 python3 -m pytest -q -p no:cacheprovider -m cuda -k "w8 and not w8a8 and not adaln and not odd" \
  tests/engine/fast/test_kernels.py 2>&1 | tee "$OUT/pytest-cuda.txt" | tail -n 8

el "GEMM micro-benchmark"
mkdir -p "$OUT/gemm"
timeout 110 python3 bench/h200-w8a16/gemm.py --out "$OUT/gemm" 2>&1 | tee "$OUT/gemm/gemm.log" | tail -n 24
[ -s "$OUT/gemm/kernel_table.json" ] && export DIT_DEMO_KERNEL_TABLE="$OUT/gemm/kernel_table.json"

[ "${E2E:-1}" = 0 ] && { el "done (E2E=0: GEMM table only)"; exit 0; }
REMAIN=$(left)
el "end to end (${REMAIN} s left)"
mkdir -p "$OUT/e2e"
# deadlines (s from e2e's start, checked before each variant's build against its expected warm-up): 512² b1 keeps
# ~190 s (bf16 + int8 + fp8-a8 warm-ups), and ~45 s at the end for its timing rounds, forwards and profiles
D1=$((REMAIN - 190))
D2=$((REMAIN - 45))
timeout "$((REMAIN - 3))" python3 bench/h200-w8a16/e2e.py --out "$OUT/e2e" --rounds 7 --profile \
  --setting "dit-xl-2-256-random:1:$D1:bf16,int8,int8-cast,fp8-a8" \
  --setting "dit-xl-2-512-random:1:$D2:bf16,int8,fp8-a8,int8-cast" 2>&1 | tee "$OUT/e2e/e2e.log" \
  | grep -E "^\[e2e\]|Error|error" | tail -n 40
el "done"
