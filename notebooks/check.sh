#!/usr/bin/env bash
# Executes every notebook top to bottom on a small simulated book (called by
# .ci/run): a virtual environment with notebooks/requirements.txt (cached
# outside the clone, keyed by the file's hash), the debug binary that
# `cargo test` built, nbclient. Fails if a cell fails, or if a committed
# notebook carries more than 500 kB of outputs. Executed copies go to
# $PRIORITIZE_ARTIFACTS/notebooks (default .ci/artifacts/notebooks).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
requirements=notebooks/requirements.txt
venv=${PRIORITIZE_NB_VENV:-$HOME/.cache/prioritize-notebooks/venv-$(sha256sum "$requirements" | cut -c1-12)}
if [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  touch "$venv/.complete"
fi

for notebook in notebooks/*.ipynb; do
  size=$(stat -c %s "$notebook")
  if [ "$size" -gt 512000 ]; then
    echo "$notebook is $size bytes: clear or shrink its outputs before committing (limit 500 kB)" >&2
    exit 1
  fi
done

export PRIORITIZE_BIN=${PRIORITIZE_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/prioritize}
export PRIORITIZE_NB_ACCOUNTS=${PRIORITIZE_NB_ACCOUNTS:-3000}
export PRIORITIZE_NB_TREES=${PRIORITIZE_NB_TREES:-80}
export PRIORITIZE_NB_SEARCH=${PRIORITIZE_NB_SEARCH:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PRIORITIZE_NB_WORK=$work
out=${PRIORITIZE_ARTIFACTS:-$root/.ci/artifacts}/notebooks
"$venv/bin/python" notebooks/execute.py --out "$out" notebooks/0*.ipynb
