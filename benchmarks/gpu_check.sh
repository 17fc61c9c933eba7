#!/usr/bin/env bash
# The GPU checks, for when a machine with an H100/H200 is lent (docs/benchmarks.md, "GPU check
# script"): at most ~10 minutes, every report written under $OUT.
#   OUT=/path/to/reports bash benchmarks/gpu_check.sh
# 1. the `gpu`-marked tests; 2. `soundalike bench` on CUDA (model-only, soundalike's path against
# the naive fp32 path, same run); 3. the end-to-end ingest from compressed files on CUDA with
# enough tracks to reach steady state (the decode-only rate of the host's cores in the same run).
# Each step has its own time limit, so one that hangs leaves the others their time; the script
# goes on after a failure and exits non-zero if any step failed.
set -u
OUT=${OUT:?a folder for the reports}
PYTHON=${PYTHON:-.venv/bin/python}
TRACKS=${TRACKS:-1500}            # ~7 s of ingest at the 200 tracks/s target: steady state
BATCH=${BATCH:-16}                # soundalike bench's batch (its own default is 1)
# The ingest takes the settings' auto sizing (batch from free device memory, decode workers =
# cores - 2) unless INGEST_BATCH / WORKERS are set.
INGEST_FLAGS=(${INGEST_BATCH:+--batch-size "$INGEST_BATCH"} ${WORKERS:+--workers "$WORKERS"})
mkdir -p "$OUT"
failed=0
step() {  # step NAME SECONDS COMMAND...: stdout to $OUT/NAME.out, stderr to $OUT/NAME.err
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit}s): $*" | tee -a "$OUT/steps.log"
  local started=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"
  local rc=$?
  echo "   rc=$rc in $((SECONDS - started)) s" | tee -a "$OUT/steps.log"
  [ $rc -eq 0 ] || failed=1
}
date -u '+%Y-%m-%d %H:%M UTC' > "$OUT/date.txt"
git rev-parse HEAD > "$OUT/commit.txt" 2>/dev/null
lscpu > "$OUT/lscpu.txt" 2>&1
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || failed=1
step pytest-gpu 150 "$PYTHON" -m pytest -m gpu -q -p no:cacheprovider tests \
  --junitxml="$OUT/pytest-gpu.xml"
step bench-cuda 180 "$PYTHON" -m soundalike.api.cli bench --device cuda --random-weights \
  --clips 256 --batch-size "$BATCH" --json
step ingest-e2e-cuda 270 "$PYTHON" -m benchmarks.ingest_e2e --device cuda --tracks "$TRACKS" \
  "${INGEST_FLAGS[@]}" --json
# The reports are the last line of each .out: one JSON document.
for name in bench-cuda ingest-e2e-cuda; do
  tail -n 1 "$OUT/$name.out" > "$OUT/$name.json" 2>/dev/null
done
exit $failed
