#!/usr/bin/env bash
# AT round trip: taupy vs the Rust load generator, same server, same workload (a lens of
# 100,000 intervals of length 10, points at pseudo-random times, one connection, one
# statement outstanding), alternating A B A B ... so drift hits both alike.
# Usage: bash python/bench/at_vs_rust.sh [ROUNDS] [SECS]   (needs target/release/tau-server
# and target/release/tau-load, and a python with taupy and numpy: $PYTHON)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
secs=${2:-5}
py=${PYTHON:-python3}
dir=$(mktemp -d /tmp/taupy-at.XXXXXX)
port=$((20000 + RANDOM % 20000))
target/release/tau-server --bind 127.0.0.1:$port --data-dir "$dir/data" --log-level warn 2>"$dir/log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do grep -q "serving on" "$dir/log" 2>/dev/null && break; sleep 0.05; done
for r in $(seq "$rounds"); do
    echo "round $r: Rust (tau-load at --conns 1 --depth 1)"
    target/release/tau-load --host 127.0.0.1:$port --secs "$secs" at --conns 1 --depth 1
    echo "round $r: Python (taupy Client.at)"
    "$py" python/bench/bench.py --host 127.0.0.1 --port $port --only at --reps 1 --at-secs "$secs" | grep -E "AT:|statements/s"
done
