#!/usr/bin/env bash
# Fails when the committed generated code differs from what protos/ generates now.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
PYTHON=${PYTHON:-python} scripts/gen_protos.sh "$tmp"
status=0
while IFS= read -r f; do
  rel=${f#"$tmp"/}
  if ! cmp -s "$f" "$rel"; then echo "generated code is stale: $rel (run make proto)"; status=1; fi
done < <(find "$tmp" -name '*_pb2*')
while IFS= read -r f; do
  [ -f "$tmp/$f" ] || { echo "generated file without a proto: $f"; status=1; }
done < <(find speako -path '*/v1/*_pb2*')
[ $status -eq 0 ] && echo "generated code is current"
exit $status
