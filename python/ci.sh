#!/usr/bin/env bash
# CI for the Python client (python/): a venv, `pip install ./python[pandas]`, mypy --strict
# on the package, and pytest against a real tau-server.
#
# The server binary is $TAU_SERVER if set, else target/debug/tau-server (built by
# `cargo test --workspace`), else target/release/tau-server. The venv lives in
# $TAUPY_VENV (default target/taupy-venv) and is made afresh on every run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ -z "${TAU_SERVER:-}" ]; then
    for b in target/debug/tau-server target/release/tau-server; do
        if [ -x "$b" ]; then TAU_SERVER="$root/$b"; break; fi
    done
fi
if [ -z "${TAU_SERVER:-}" ] || [ ! -x "$TAU_SERVER" ]; then
    echo "python/ci.sh: no tau-server binary (set TAU_SERVER or build the workspace)" >&2
    exit 1
fi
export TAU_SERVER

venv=${TAUPY_VENV:-$root/target/taupy-venv}
python=${PYTHON:-python3}
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "./python[pandas]" pytest mypy
echo "python/ci.sh: $("$venv/bin/python" --version), server $TAU_SERVER"

# Type-check the installed sources exactly as shipped.
(cd python && "$venv/bin/mypy" --strict taupy)

# Run the tests against the installed package, not the source tree.
tmp=$(mktemp -d /tmp/taupy-ci.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cp -r python/tests "$tmp/tests"
cd "$tmp"
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests
