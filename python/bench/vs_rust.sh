#!/usr/bin/env bash
# taupy next to the Rust load generator on one release server, alternating Rust, Python,
# Rust, Python ... so that the machine's drift hits both alike:
#   AT: tau-load at --conns 1 --depth 1 (a lens of 100,000 intervals of length 10, points
#       at pseudo-random times, one statement outstanding) vs taupy's Client.at on the
#       same kind of lens;
#   BATCH APPEND: tau-load batch --conns 1 --size 20000 vs taupy's batch_append of
#       1,000,000 NumPy rows (full-precision and 2-decimal values).
# Usage: PYTHON=venv/bin/python bash python/bench/vs_rust.sh [ROUNDS] [SECS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
secs=${2:-5}
py=${PYTHON:-python3}
dir=$(mktemp -d /tmp/taupy-vs.XXXXXX)
port=$((20000 + RANDOM % 20000))
target/release/tau-server --bind 127.0.0.1:$port --data-dir "$dir/data" --log-level warn 2>"$dir/log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do grep -q "serving on" "$dir/log" 2>/dev/null && break; sleep 0.05; done
load() { target/release/tau-load --host 127.0.0.1:$port --secs "$secs" "$@"; }
pybench() { "$py" python/bench/bench.py --host 127.0.0.1 --port $port --reps 1 --at-secs "$secs" "$@" | grep -E "^\| (at|batch|the same)"; }
for r in $(seq "$rounds"); do
    echo "== round $r"
    load at --conns 1 --depth 1
    pybench --only at
    load batch --conns 1 --size 20000
    pybench --only batch
done
