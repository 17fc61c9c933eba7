#!/usr/bin/env bash
# Artists-like-X over HTTP, two checkouts alternated on one store in one run (docs/benchmarks.md,
# "before and after the one key check"). Each side: `soundalike serve` pinned to CPU 0, started
# fresh, measured with wrk (CPU 1) once its lists are in memory.
#   OLD=/path/to/old/checkout NEW=/path/to/new/checkout DATA=/tmp/lb100k bash benchmarks/ab_artists_like.sh
# A checkout's code is imported through $SIDE/.shim (a folder `soundalike/` linking its package
# folders), so both run with one virtualenv. DATA comes from `python -m benchmarks.http
# --artists 100000 --backends edge --workdir $DATA` (its wrk/ folder holds the Lua script and paths).
set -u
OLD=${OLD:?the checkout before} NEW=${NEW:?the checkout after} DATA=${DATA:-/tmp/lb100k}
PYTHON=${PYTHON:-$NEW/.venv/bin/python} ROUNDS=${ROUNDS:-3}
measure() {
  local tree=$1 port=$((18000 + RANDOM % 1000))
  (cd "$tree" && PYTHONPATH="$tree/.shim" exec setsid taskset -c 0 "$PYTHON" -m soundalike.api.cli \
    serve --host 127.0.0.1 --port $port --data-dir "$DATA/edge") > "$DATA/ab-server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 180); do
    curl -s "http://127.0.0.1:$port/readyz" | grep -q '"lookups_in_memory":true' && break
    sleep 1
  done
  local wrk=(taskset -c 1 wrk -t1 -c8 -s "$DATA/wrk/random-path.lua" "http://127.0.0.1:$port" --
             "$DATA/wrk/get-artists-artist-similar.paths")
  "${wrk[@]:0:5}" -d3s "${wrk[@]:5}" 1 > /dev/null
  "${wrk[@]:0:5}" -d10s "${wrk[@]:5}" 7 | awk '/Requests\/sec/ {print $2}'
  kill -TERM -- -$pid 2>/dev/null; wait $pid 2>/dev/null
}
for round in $(seq 1 "$ROUNDS"); do
  echo "pair $round: before $(measure "$OLD") after $(measure "$NEW") req/s"
done
