#!/usr/bin/env bash
# Regenerates the Python code of protos/ into the speako package (committed; CI checks it is current).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
find speako -path '*/v1/*_pb2*' -delete
mapfile -t files < <(cd protos && find speako -name '*.proto' | sort)
(cd protos && "$PY" -m grpc_tools.protoc -I. --python_out=../ --pyi_out=../ --grpc_python_out=../ "${files[@]}")
for f in "${files[@]}"; do
  d=$(dirname "$f")
  while [ "$d" != "." ]; do
    [ -f "$d/__init__.py" ] || : > "$d/__init__.py"
    d=$(dirname "$d")
  done
done
