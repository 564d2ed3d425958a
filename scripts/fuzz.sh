#!/usr/bin/env bash
# Runs every native Go fuzz target of the repository, one after the other,
# for $FUZZTIME each (default 60s; `make fuzz FUZZTIME=10m`). Minimizing a
# new input is capped at $FUZZMINIMIZETIME (default 5s; go's own default,
# 60s, can spend a short run on one input). Extra flags for go test go in
# $FUZZFLAGS (e.g. -parallel=1 on a shared machine).
# A crash stops the run; go test writes the input that crashed to the
# package's testdata/fuzz/FuzzName/, where it becomes a regression case
# that plain `go test` runs: fix the bug, then commit it.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-60s}
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-5s}
targets=(
  ./internal/imageproc:FuzzDecodeProcess
  ./internal/imageproc:FuzzNPY
  ./internal/tokenizer:FuzzEncodeDecode
  ./internal/tokenizer:FuzzStreamDecode
  ./internal/tokenizer:FuzzFromJSON
  ./internal/prompt:FuzzRender
  ./internal/prompt:FuzzExpand
  ./internal/modelconfig:FuzzLoad
  ./internal/onnx:FuzzReadGraphIO
  ./internal/hub:FuzzPlanJSON
)
# Every fuzz target in the tree must be listed above.
listed=$(printf '%s\n' "${targets[@]}" | sed 's/.*://' | sort)
found=$(grep -rhoE '^func Fuzz[A-Za-z0-9_]*' --include='*_test.go' . | sed 's/^func //' | sort)
if [ "$listed" != "$found" ]; then
  echo "fuzz.sh: the target list differs from the Fuzz functions in the tree:" >&2
  diff <(echo "$listed") <(echo "$found") >&2 || true
  exit 1
fi
for t in "${targets[@]}"; do
  pkg=${t%%:*} name=${t##*:}
  echo "== $name ($pkg, $FUZZTIME)"
  # shellcheck disable=SC2086
  go test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZETIME" ${FUZZFLAGS:-} "$pkg"
done
