#!/usr/bin/env bash
# Run 3b (one device call, kind nvidia-h200): which package form loads in a fresh process (toy.py), XL/2 packages
# rebuilt in the `spaces` form meanwhile, then the fresh-process AOT phases and the steady comparison at 256² b1.
set -u -o pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 DIFFUSERS_VERBOSITY=error TQDM_DISABLE=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/diffusers*.whl .whl/optimum_quanto*.whl && export INSTALLED=1 PYTHONPATH=/tmp/site:$PWD || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.csv"
T0=$(date +%s)
ONLY_BUILD=1 BUDGET=260 bash bench/h200-aot/run.sh 256 0 >/tmp/build-256.log 2>&1 &
BUILD=$!
T=/tmp/toy; mkdir -p $T; PIDS=()
for c in outside spaces inside; do
  timeout 150 python3 bench/h200-aot/toy.py build $c $T/$c.pt2 >$T/build-$c.log 2>&1 & PIDS+=($!)
done
wait "${PIDS[@]}"; grep -h "TOY\|Error" $T/build-*.log | tail -n 6
for c in outside spaces inside; do
  for flags in "" "codecache"; do
    timeout 60 python3 -X faulthandler bench/h200-aot/toy.py load $T/$c.pt2 $flags >$T/load-$c-$flags.log 2>&1
    echo "TOY-RC $c [$flags] rc=$? $(grep -h '^TOY' $T/load-$c-$flags.log)"
  done
done | tee $T/toy.txt
echo "=== toy done at t+$(($(date +%s) - T0))s"
wait $BUILD; tail -n 8 /tmp/build-256.log
SKIP_BUILD=1 CACHE=0 RECIPES="bf16 int8 fp8-a8" STEADY_RECIPES="bf16 fp8-a8" STEADY_LIMIT=210 STEADY_RUNS=7 BUDGET=$((540 - $(date +%s) + T0)) \
  bash bench/h200-aot/run.sh 256 0 2>&1 | sed 's/^/[run] /' | grep -v "^\[run\] RECORD" | tail -n 30
tar czf "$OUT/toy.tar.gz" -C /tmp toy
echo "=== all done at t+$(($(date +%s) - T0))s"
