#!/usr/bin/env bash
# Generates the Python code of protos/ into OUT (default: the repo root, i.e. the speako package).
# The output is committed; `make check-proto` regenerates into a temporary tree and fails on drift.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=$(realpath "${1:-.}")
if [ "$OUT" = "$(pwd)" ]; then find speako -path '*/v1/*_pb2*' -delete; fi
mapfile -t files < <(cd protos && find speako -name '*.proto' | sort)
(cd protos && "$PY" -m grpc_tools.protoc -I. --python_out="$OUT" --pyi_out="$OUT" --grpc_python_out="$OUT" "${files[@]}")
for f in "${files[@]}"; do
  d=$(dirname "$f")
  while [ "$d" != "." ]; do
    [ -f "$OUT/$d/__init__.py" ] || : > "$OUT/$d/__init__.py"
    d=$(dirname "$d")
  done
done
