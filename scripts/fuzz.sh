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
# The targets: every func FuzzXxx in a _test.go file of the module (not
# under testdata or node_modules), as ./dir:FuzzXxx, in a stable order.
mapfile -t targets < <(grep -rlE '^func Fuzz' --include='*_test.go' --exclude-dir=testdata --exclude-dir=node_modules . |
  while read -r f; do
    for name in $(grep -oE '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //'); do
      echo "$(dirname "$f"):$name"
    done
  done | sort)
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz.sh: no fuzz targets found" >&2
  exit 1
fi
# Go before 1.27 can end a duration-bounded run with a bare "context
# deadline exceeded" failure and no input (golang/go#75804: the
# coordinator's deadline races its workers). That one failure, with no new
# input written under testdata/fuzz, is reported and not counted; any other
# failure, or a written input, stops the run.
for t in "${targets[@]}"; do
  pkg=${t%%:*} name=${t##*:}
  echo "== $name ($pkg, $FUZZTIME)"
  corpus="$pkg/testdata/fuzz/$name"
  before=$({ ls "$corpus" 2>/dev/null || true; } | wc -l)
  log=$(mktemp)
  # shellcheck disable=SC2086
  if go test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZETIME" ${FUZZFLAGS:-} "$pkg" 2>&1 | tee "$log"; then
    rm -f "$log"
    continue
  fi
  after=$({ ls "$corpus" 2>/dev/null || true; } | wc -l)
  if [ "$after" -eq "$before" ] && grep -q '^    context deadline exceeded$' "$log" &&
    [ "$(grep -c '^--- FAIL' "$log")" -eq 1 ] && ! grep -qE 'panic|Failing input|failure while testing seed corpus' "$log"; then
    echo "fuzz.sh: $name: the end-of-run deadline race of Go's fuzzer (golang/go#75804), no input written: not a failure"
    rm -f "$log"
    continue
  fi
  rm -f "$log"
  exit 1
done
