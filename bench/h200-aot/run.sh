#!/usr/bin/env bash
# Issue 23 item 5's H200 device calls (kind nvidia-h200), from the repo root with DESIGN.md §5's wheels in .whl:
#   bash bench/h200-aot/run.sh 256 1   # 256² b1 + the segfault diagnosis        bash bench/h200-aot/run.sh 512 0
#   ONLY_BUILD=1 bash bench/h200-aot/run.sh 512 0   # packages only ($OUT/packages-512.tar.gz, with records + logs)
# Phases of dit_demo/reports/bench_aot.py, each process fresh: builds and cold torch.compile runs side by side (so
# their times are under that load: upper bounds), then one process at a time: AOT fresh start, compile-cache fresh
# start, and the interleaved steady run. CPU dry run: GPU=0 MODEL=tiny-random OUT=/tmp/x bash bench/h200-aot/run.sh 16 0
set -u -o pipefail
RES=${1:?resolution 256 or 512}
DIAG=${2:-0}
GPU=${GPU:-1}
MODEL=${MODEL:-dit-xl-2-$RES-random}
PY=${PY:-python3}
RECIPES=${RECIPES:-bf16 int8 fp8-a8}
STEADY_RUNS=${STEADY_RUNS:-9}
BUDGET=${BUDGET:-570}  # seconds this script may run (the device call's limit is 600)
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 DIFFUSERS_VERBOSITY=error TQDM_DISABLE=1
T0=$(date +%s); DEADLINE=$((T0 + BUDGET))
WORK=${WORK:-/tmp/aotw-$RES}; LOGS=$WORK/logs
mkdir -p "$OUT" "$LOGS"
el() { echo "=== [t+$(($(date +%s) - T0))s] $*"; }
left() { local l=$((DEADLINE - $(date +%s) - 5)); [ "$l" -lt "$1" ] && echo $((l > 1 ? l : 1)) || echo "$1"; }
if [ "$GPU" = 1 ] && [ "${INSTALLED:-0}" = 1 ]; then
  :  # the caller installed the wheels and set PYTHONPATH (two runs side by side must not install at once)
elif [ "$GPU" = 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD || exit 1
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv \
    | tee "$OUT/nvidia-smi.csv"
else
  export PYTHONPATH=$PWD
fi
ARGS=(--model "$MODEL" --out "$WORK")
phase() {  # name limit phase-args... : one fresh process with its own empty compile caches
  local name=$1 limit; limit=$(left "$2"); shift 2
  local cache; cache=$(mktemp -d)
  T_LAUNCH=$(date +%s.%N) TORCHINDUCTOR_CACHE_DIR=$cache/inductor TRITON_CACHE_DIR=$cache/triton \
    timeout "$limit" "$PY" -m dit_demo.reports.bench_aot "$@" "${ARGS[@]}" >"$LOGS/$name.log" 2>&1
  local rc=$?
  echo "phase $name rc=$rc ($(($(date +%s) - T0))s)"; grep -h '^RECORD\|Error\|error:' "$LOGS/$name.log" | tail -n 4
  [ "$rc" = 0 ] || echo "{\"phase\": \"$name\", \"failed_rc\": $rc}" >>"$WORK/records.jsonl"
}
diag() {  # name limit args: one package load per process, with a process listing while it runs (a compiler?)
  local name=$1 limit=$2; shift 2
  timeout "$(left "$limit")" "$PY" -X faulthandler bench/h200-aot/diag.py "$@" >"$LOGS/diag-$name.log" 2>&1 &
  local pid=$!; sleep 12
  { echo "--- ps after 12 s"; ps -eo pid,ppid,etime,pcpu,rss,args --sort=-pcpu | head -n 12; } >>"$LOGS/diag-$name.ps"
  wait $pid; local rc=$?
  echo "DIAG-RC $name rc=$rc $(grep -h '^DIAG' "$LOGS/diag-$name.log" | tail -n 1)" | tee -a "$LOGS/diag.txt"
  return $rc
}
el "build + cold (side by side)"
for r in $([ "${SKIP_BUILD:-0}" = 1 ] || echo "$RECIPES"); do  # SKIP_BUILD=1: packages already in $WORK
  phase "build-$r" 300 build --recipes "$r" &
  [ "${ONLY_BUILD:-0}" = 1 ] || phase "cold-$r" 300 cold --recipes "$r" &
done
if [ "$DIAG" = 1 ]; then phase build-execstack 300 build --recipes bf16 --keep-execstack & fi
wait
ls -la "$WORK"
[ "${SKIP_BUILD:-0}" = 1 ] || (cd "$WORK" && tar czf "$OUT/packages-$RES.tar.gz" ./*.pt2 ./*.json records.jsonl logs 2>/dev/null)  # ≤ 8 files back
if [ "${ONLY_BUILD:-0}" = 1 ]; then el "packages only: done"; exit 0; fi
el "load diagnosis"
if ! diag cleared 45 "$WORK/bf16.pt2"; then
  echo "the cleared package does not load either: no AOT phases"; mkdir -p "$WORK/unloadable"; mv "$WORK"/*.pt2 "$WORK/unloadable/"
fi
[ "$DIAG" = 1 ] && [ -f "$WORK/bf16-execstack.pt2" ] && diag execstack 22 "$WORK/bf16-execstack.pt2"
el "fresh process: AOT package"
for r in $RECIPES; do [ -f "$WORK/$r.pt2" ] && phase "aot-$r" 60 aot --recipes "$r"; done
el "steady, interleaved"
STEADY_RECIPES=${STEADY_RECIPES:-$RECIPES}
[ "${STEADY:-1}" = 1 ] && phase steady "${STEADY_LIMIT:-170}" steady --runs "$STEADY_RUNS" --recipes "${STEADY_RECIPES// /,}"
el "fresh process: compile cache"
[ "${CACHE:-1}" = 1 ] && for r in $RECIPES; do phase "cache-$r" 60 cache --recipes "$r"; done
el "done"
cp "$WORK/records.jsonl" "$WORK/environment.json" "$OUT/" 2>/dev/null
cp "$WORK"/*.json "$LOGS/" 2>/dev/null
tar czf "$OUT/logs-$RES.tar.gz" -C "$WORK" logs
cat "$LOGS/diag.txt" 2>/dev/null
grep -h '^RECORD' "$LOGS"/*.log | cut -c1-400
