#!/usr/bin/env bash
# Second, short device call (one H200, ~2.5 minutes): what the first call (device_run.sh) could not finish.
#  1. gallery, 1 process, alone on the GPU: 25 classes x 2 seeds, batch 25 (2 batches), warm-up on: clean per-recipe
#     batch latency on one H200;
#  2. at the same time on the same GPU: the gallery with 2 processes sharing it (gloo), no warm-up, and the digits
#     evaluation rows the first call lost (g=4, g=2 + real-digit baseline; 10,000 samples per row);
#  3. pixel equality of 1 vs 2 processes.
# Run from the snapshot root: cd .g16 && bash ../bench/h200-multigpu/device_run_small.sh
# CPU dry run: MODEL=tiny-random SAMPLES=40 DIGITS_BATCH=20 GPU=0 OUT=/tmp/x bash ...
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 OMP_NUM_THREADS=2
MODEL=${MODEL:-dit-xl-2-256-random}
SAMPLES=${SAMPLES:-10000}
DIGITS_BATCH=${DIGITS_BATCH:-1000}
GPU=${GPU:-1}
G=../bench/h200-multigpu
W=${WORK:-/tmp/h200small}
rm -rf "$W" && mkdir -p "$W" "$OUT"
T0=$(date +%s)
el() { echo "=== [t+$(($(date +%s) - T0))s] $*"; }
if [ "$GPU" = 1 ]; then
  nvidia-smi --query-gpu=timestamp,index,memory.used,utilization.gpu --format=csv -lms 500 >"$W/smi.csv" &
  SMI=$!
  DEV=cuda SHARE=(env GALLERY_SHARE_ONE_GPU=1)
else
  export ACCELERATE_USE_CPU=1
  DEV=cpu SHARE=(env)
fi
LAUNCH=(python3 -m accelerate.commands.launch --num_machines 1 --mixed_precision no --dynamo_backend no)
ARGS=(--model "$MODEL" --recipes bf16,int8,int8-a8 --labels "$(seq -s, 0 24)" --per-class 2 --batch-size 25
  --steps 25 --guidance 4 --threads 2 --no-progress --max-rows-shown 10 --machine "1x NVIDIA H200 (nvidia-h200 device)")
DIG=(python3 -m dit_demo.embedded.evaluate --samples "$SAMPLES" --recipes bf16,int8,int8-a8 --batch "$DIGITS_BATCH"
  --threads 1 --device "$DEV" --dtype float32)

el "gallery, 1 process, alone on the GPU"
timeout -k 5 "${T1:-65}" "${LAUNCH[@]}" --num_processes 1 $G/gallery_timed.py --npy "$W/n1" "${ARGS[@]}" --out "$W/g1"
echo "gallery 1 process: exit $?"

el "in parallel: gallery with 2 processes sharing the GPU (no warm-up); digits g=4; digits g=2 + baseline"
timeout -k 5 "${T2:-72}" "${DIG[@]}" --guidance 4 --no-baseline --out "$W/q4" >"$W/q4.log" 2>&1 &
D4=$!
timeout -k 5 "${T2:-72}" "${DIG[@]}" --guidance 2 --out "$W/q2" >"$W/q2.log" 2>&1 &
D2=$!
"${SHARE[@]}" timeout -k 5 "${T2:-72}" "${LAUNCH[@]}" --multi_gpu --num_processes 2 --main_process_port 29513 \
  $G/gallery_timed.py --npy "$W/n2" "${ARGS[@]}" --no-warmup --out "$W/g2"
echo "gallery 2 processes: exit $?"
wait "$D4"
echo "digits g=4: exit $?"
wait "$D2"
echo "digits g=2: exit $?"
el "pixel equality"
python3 $G/compare_runs.py "$W/n1" "$W/n2" "$OUT/equality.json"
grep -h '^{' "$W"/q?.log

el packing
[ "$GPU" = 1 ] && kill "$SMI"
tar -czf "$OUT/small.tar.gz" -C "$W" $(cd "$W" && ls -d g?/results.json g?/results.md g?/timing.json q?/quality.* q?.log smi.csv 2>/dev/null)
ls -la "$OUT"
el done
