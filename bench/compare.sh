#!/usr/bin/env bash
# Tau vs PostgreSQL 15 vs SQLite on the same bitemporal workload (BENCHMARKS.md).
#   bash bench/compare.sh                 # the full run recorded in BENCHMARKS.md
#   bash bench/compare.sh --n 2000 ...    # any tau-compare flags (see --help)
# Needs PostgreSQL 15's server binaries (Debian: apt-get install postgresql-15); the
# harness starts and stops a throwaway cluster itself. SQLite is built in (rusqlite).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
  echo "installing PostgreSQL 15 (Debian package) ..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15) >&2
fi
cargo build --release -q -p tau-server -p tau-compare
exec target/release/tau-compare "$@"
