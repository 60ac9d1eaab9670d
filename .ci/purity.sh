#!/usr/bin/env bash
# The engine is a pure state machine (DESIGN.md): no IO, clocks, threads, OS entropy or
# randomly seeded hash maps in engine/src. Fail CI if any of it creeps in.
set -euo pipefail
cd "$(dirname "$0")/.."
pattern='std::(fs|net|thread|process|env)\b|Instant|SystemTime|thread_rng|OsRng|getrandom|rand::random|\bHashMap\b|\bHashSet\b|RandomState|unsafe '
hits=$(grep -rnE "$pattern" engine/src | grep -vE '^[^:]+:[0-9]+:\s*//' || true)
if [ -n "$hits" ]; then
  echo "engine purity violated (see DESIGN.md):"
  echo "$hits"
  exit 1
fi
# The engine's dependencies must not pull OS randomness in either.
if cargo tree -p tau-engine -e normal --prefix none 2>/dev/null | grep -qE '^getrandom '; then
  echo "engine purity violated: a dependency pulls in getrandom"
  exit 1
fi
echo "engine purity: ok"
