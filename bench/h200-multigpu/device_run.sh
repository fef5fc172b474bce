#!/usr/bin/env bash
# Issue 16's device call. Run from the snapshot root (commit 788ead4 + its patch, in git history: see README.md):
#     cd .g16 && bash ../bench/h200-multigpu/device_run.sh
# 2 GPUs (NGPU=2, nvidia-h200-x2): XL/2 gallery with 1 process on GPU0 while the embedded digits evaluation
#   (10,000 samples per row) runs on GPU1; then the gallery with 2 processes (--multi_gpu, NCCL); pixel equality.
# 1 GPU (NGPU=1, nvidia-h200): the gallery with 1 process; the digits evaluation (g=4, g=2); then 2 processes SHARING
#   the GPU (gloo process group), on as many classes as the time left allows; digits g=1 if time is left; equality.
# STAGES (default "gallery1 digits gallery2") picks stages, so the work can be split over device calls: on one H200
# the 2,000-image 1-process gallery alone needs ~9 minutes (measured 2026-11-29: ~25 s of GPU time per 100-image
# batch of the three recipes, int8-a8 the slowest), so on nvidia-h200-x2 run STAGES=gallery1 in one call and
# STAGES=gallery2 in the next, then compare the two calls' hashes.json with compare_runs.py (digits: done).
# CPU dry run of the same lines: MODEL=tiny-random PER_CLASS=3 BATCH=2 SAMPLES=40 DIGITS_BATCH=20 GPU=0 OUT=/tmp/x
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 OMP_NUM_THREADS=8
MODEL=${MODEL:-dit-xl-2-256-random}
PER_CLASS=${PER_CLASS:-2}
BATCH=${BATCH:-100}
SAMPLES=${SAMPLES:-10000}
DIGITS_BATCH=${DIGITS_BATCH:-1000}
GPU=${GPU:-1}              # 0: CPU dry run (ACCELERATE_USE_CPU, --device cpu)
NGPU=${NGPU:-$( [ "$GPU" = 1 ] && nvidia-smi -L | grep -c '^GPU' || echo 1)}
DEADLINE=${DEADLINE:-520}  # seconds after start by which everything must have ended
STAGES=" ${STAGES:-gallery1 digits gallery2} "  # any of: gallery1 digits gallery2 (one device call each, if need be)
has() { [[ "$STAGES" == *" $1 "* ]]; }
G=../bench/h200-multigpu
W=${WORK:-/tmp/h200mg}
rm -rf "$W" && mkdir -p "$W" "$OUT"
T0=$(date +%s)
el() { echo "=== [t+$(($(date +%s) - T0))s] $*"; }
lim() { local l=$((DEADLINE - ($(date +%s) - T0) - $1)); [ "$l" -lt 20 ] && l=20; echo "$l"; }  # seconds left - $1

el "environment, $NGPU GPU(s)"
python3 -c "import torch, accelerate, diffusers, optimum.quanto, torchmetrics; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count(), 'accelerate', accelerate.__version__, 'diffusers', diffusers.__version__, 'torchmetrics', torchmetrics.__version__)"
nproc
if [ "$GPU" = 1 ]; then
  nvidia-smi --query-gpu=index,name,memory.total,driver_version,clocks.max.sm --format=csv
  [ "$NGPU" -gt 1 ] && nvidia-smi topo -m
  nvidia-smi --query-gpu=timestamp,index,memory.used,utilization.gpu --format=csv -lms 500 >"$W/smi.csv" &
  SMI=$!
  DIGITS_DEVICE=cuda
else
  export ACCELERATE_USE_CPU=1
  DIGITS_DEVICE=cpu
fi
if [ "$NGPU" -gt 1 ]; then
  MACHINE=${MACHINE:-"2x NVIDIA H200 (nvidia-h200-x2 device)"}
  GPU0=(env CUDA_VISIBLE_DEVICES=0) DIGITS_GPU=(env CUDA_VISIBLE_DEVICES=1) SHARE=(env)
else
  MACHINE=${MACHINE:-"1x NVIDIA H200 (nvidia-h200 device)"}
  GPU0=(env) DIGITS_GPU=(env) SHARE=(env GALLERY_SHARE_ONE_GPU="$GPU")
fi
# Every class by id: the snapshot's `--labels all` means "the default" (4 spread classes on a 1000-class model)
ALL=${ALL_LABELS:-$(python3 -c "import sys; sys.path.insert(0, '.'); from dit_demo.models import RANDOM_SOURCES, imagenet_id2label; print(','.join(map(str, range(len(imagenet_id2label())))) if '$MODEL' in RANDOM_SOURCES else 'all')")}
LAUNCH=(python3 -m accelerate.commands.launch --num_machines 1 --mixed_precision no --dynamo_backend no)
ARGS=(--model "$MODEL" --recipes bf16,int8,int8-a8 --per-class "$PER_CLASS" --batch-size "$BATCH"
  --steps 25 --guidance 4 --threads 8 --no-progress --max-rows-shown 10 --machine "$MACHINE")
DIG=(python3 -m dit_demo.embedded.evaluate --samples "$SAMPLES" --recipes bf16,int8,int8-a8 --batch "$DIGITS_BATCH"
  --threads 4 --device "$DIGITS_DEVICE" --dtype float32)
digits() {  # guidance, seconds to keep in reserve
  local extra=(--no-baseline) && [ "$1" = 2 ] && extra=()
  "${DIGITS_GPU[@]}" timeout -k 10 "$(lim "$2")" "${DIG[@]}" --guidance "$1" "${extra[@]}" --out "$W/q$1" >"$W/q$1.log" 2>&1
  local rc=$?
  el "digits g=$1 exit $rc"
}

if [ "$NGPU" -gt 1 ] && has digits; then
  el "digits evaluation on GPU1 in the background: g=4, g=2 (+ real-digit baseline), g=1"
  (digits 4 250; digits 2 250; digits 1 250) &
  DIGITS=$!
fi

LABELS=$ALL
if has gallery1; then
el "gallery, 1 process, all classes"
# measured on one H200 (2026-11-29): ~25 s of GPU time per 100-image batch of the three recipes, so the whole
# 2,000-image run needs ~9 min alone; it gets all the time left when gallery2 runs in another call
"${GPU0[@]}" timeout -k 10 "$(lim "$(has gallery2 && echo 200 || echo 25)")" "${LAUNCH[@]}" --num_processes 1 $G/gallery_timed.py --npy "$W/n1" "${ARGS[@]}" \
  --labels "$ALL" --out "$W/g1"
echo "exit $?"
fi

if [ "$NGPU" -gt 1 ]; then
  has digits && el "waiting for the digits evaluation" && wait "$DIGITS"
elif has gallery2 && [ -f "$W/g1/timing.json" ]; then
  if has digits; then
    el "digits evaluation: g=4, g=2 (+ real-digit baseline)"
    digits 4 130
    digits 2 100
  fi
  # as many classes as fit in the time left (reserve ~70 s for g=1 and packing), in whole pairs of batches
  LABELS=$(python3 - "$W/g1/timing.json" "$(lim 70)" "$BATCH" "$PER_CLASS" "$ALL" <<'EOF'
import json, sys
path, left, batch, per_class = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ids = sys.argv[5].split(",")
try:
    ips = json.load(open(path))["images_per_s_all_recipes"]  # images of all 3 recipes per second
except Exception:
    ips = None
per_recipe = (left - 90) * ips / 3 if ips else 0  # ~90 s: load, quantize, calibrate, warm-up, assemble
pairs = max(1, min(len(ids) * per_class // (2 * batch), int(per_recipe // (2 * batch))))
classes = max(1, min(len(ids), 2 * pairs * batch // per_class))
print(",".join(ids[:classes]))
EOF
)
fi
if ! has gallery2; then
  :
elif [ "$(lim 60)" -lt 110 ]; then
  el "gallery, 2 processes: SKIPPED, too little time left"
else
el "gallery, 2 processes ($([ "$NGPU" -gt 1 ] && echo 'GPU0 + GPU1, NCCL' || echo 'both on the one GPU, gloo')), labels ${LABELS:0:12}...${LABELS: -8}"
"${SHARE[@]}" timeout -k 10 "$(lim 50)" "${LAUNCH[@]}" --multi_gpu --num_processes 2 --main_process_port 29513 \
  $G/gallery_timed.py --npy "$W/n2" "${ARGS[@]}" --labels "$LABELS" --out "$W/g2"
echo "exit $?"
fi

el "pixel equality 1 vs 2 processes"
[ -d "$W/n1" ] && [ -d "$W/n2" ] && python3 $G/compare_runs.py "$W/n1" "$W/n2" "$OUT/equality.json"

if [ "$NGPU" -eq 1 ] && has digits; then
  if [ "$(lim 15)" -gt 30 ]; then digits 1 15; else el "digits g=1: SKIPPED, too little time left"; fi
fi
grep -hos '{"recipe.*}' "$W"/q?.log
QS=$(ls "$W"/q[124]/quality.json 2>/dev/null)
[ -n "$QS" ] && python3 $G/merge_quality.py "$W/q" $QS

el "packing"
[ "$GPU" = 1 ] && kill "$SMI"
for g in g1 g2; do
  tar -czf "$OUT/gallery-$g.tar.gz" -C "$W" $(cd "$W" && ls -d $g/results.json $g/results.md $g/timing.json $g/hashes.json 2>/dev/null)
done
tar -czf "$OUT/digits.tar.gz" -C "$W" $(cd "$W" && ls -d q/quality.* q?/quality.* q?.log 2>/dev/null)
[ -f "$W/smi.csv" ] && gzip -c "$W/smi.csv" >"$OUT/smi.csv.gz"
ls -la "$OUT"
el done
