#!/usr/bin/env bash
# Issue 17's H200 device calls (kind nvidia-h200), run from the repo root with the wheels of DESIGN.md §5 in .whl:
#   bash bench/h200-run.sh 1   # CUDA tests + 256² batch 1, fused QKV off and on (the exploration)
#   bash bench/h200-run.sh 2   # 512² batch 1, 256² batch 8, 512² batch 8 with the winning settings
# Every table is `dit-demo bench` (one process per table, ratios to bf16 of that same process).
# CPU dry run of the same lines: GPU=0 PY=.venv/bin/python MODEL256=tiny-random MODEL512=tiny-random OUT=/tmp/x \
#   bash bench/h200-run.sh 1
set -u -o pipefail
STAGE=${1:?stage 1 or 2}
GPU=${GPU:-1}
MODEL256=${MODEL256:-dit-xl-2-256-random}
MODEL512=${MODEL512:-dit-xl-2-512-random}
FUSE=${FUSE:-auto}            # stage 2: off, on or auto (= on with step capture, what stage 1 found faster)
PY=${PY:-python3}              # the dry run: PY=.venv/bin/python
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 DIFFUSERS_VERBOSITY=error TQDM_DISABLE=1
mkdir -p "$OUT"
T0=$(date +%s)
el() { echo "=== [t+$(($(date +%s) - T0))s] $*"; }
if [ "$GPU" = 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD || exit 1
  DEV=()
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv
else
  DEV=(--device cpu)
  export TORCH_COMPILE_DISABLE=1  # the dry run checks the plumbing, not Inductor
fi
"$PY" -c "import torch, diffusers, optimum.quanto as q; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'quanto', q.__version__)"
COMMON=(--compile none,reduce-overhead --eager-recipes bf16 --warmup-runs 1 --forward-runs 20 "${DEV[@]}")
ALL=(--recipes bf16,int8,int8-a8,fp8-a8)
bench() {  # out-folder seconds args...
  local name=$1 limit=$2; shift 2
  el "bench $name"
  mkdir -p "$OUT/$name"
  timeout "$limit" "$PY" -m dit_demo bench "$@" --out "$OUT/$name" 2>&1 | tee "$OUT/$name/bench.log" | tail -n 30
  tar czf "$OUT/$name.tar.gz" -C "$OUT" "$name" && rm -rf "${OUT:?}/$name"
}
if [ "$STAGE" = 1 ]; then
  el "CUDA tests"
  timeout 120 "$PY" -m pytest -q -p no:cacheprovider -m cuda -k "not triton and not mixed" \
    tests/engine/test_capture.py tests/engine/test_fp8.py tests/engine/test_fast.py 2>&1 | tee "$OUT/pytest-cuda.txt" \
    | tail -n 15
  # every recipe with the whole step captured and fused QKV, kernel profiles of the captured step
  bench h200-b256 250 --model "$MODEL256" --batch 1 --runs 5 --fuse-qkv on --profile 3 "${ALL[@]}" "${COMMON[@]}"
  # what fused QKV and whole-step capture each bring: unfused, step graphs vs torch.compile's forward-only graphs
  bench h200-b256-unfused 190 --model "$MODEL256" --batch 1 --runs 5 --recipes bf16,int8 --fuse-qkv off \
    --capture step,forward "${COMMON[@]}"
else
  bench h200-b512 "${T512:-170}" --model "$MODEL512" --batch 1 --runs 5 --fuse-qkv "$FUSE" "${ALL[@]}" "${COMMON[@]}"
  bench h200-b256x8 "${T256X8:-170}" --model "$MODEL256" --batch 8 --runs 3 --fuse-qkv "$FUSE" "${ALL[@]}" "${COMMON[@]}"
  bench h200-b512x8 "${T512X8:-200}" --model "$MODEL512" --batch 8 --runs 3 --fuse-qkv "$FUSE" --profile 3 "${ALL[@]}" \
    "${COMMON[@]}"
fi
el "done"
