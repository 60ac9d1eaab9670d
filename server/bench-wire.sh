#!/usr/bin/env bash
# Wire benchmarks (BENCHMARKS.md, "Wire"): a release tau-server on loopback with a fresh
# durable data directory, driven by tau-load. Usage: bash server/bench-wire.sh [SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
cargo build --release -q -p tau-server
dir=$(mktemp -d /tmp/tau-wire.XXXXXX)
port=$((20000 + RANDOM % 20000))
target/release/tau-server --bind 127.0.0.1:$port --data-dir "$dir/data" 2>"$dir/log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do grep -q "serving on" "$dir/log" 2>/dev/null && break; sleep 0.05; done
load() { target/release/tau-load --host 127.0.0.1:$port --secs "$secs" "$@"; }
load at --conns 1 --depth 256
load at --conns 16 --depth 256
load append --conns 1 --depth 1
load append --conns 32 --depth 1
load append --conns 64 --depth 1
load batch --conns 1 --size 20000 --depth 1
load batch --conns 4 --size 20000 --depth 1
