#!/usr/bin/env bash
# Keeps what fuzzing found: copies the N smallest inputs (default 12, none
# over 8 KB) of each target's local corpus, which go test -fuzz grows under
# $(go env GOCACHE)/fuzz, into the package's testdata/fuzz/FuzzName/, where
# they become seeds that every plain `go test` runs and every fuzz run
# starts from. Run after a long `make fuzz`, review, commit.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-12}
module=$(go list -m)
cache=$(go env GOCACHE)/fuzz/$module
for dir in "$cache"/*/*/Fuzz* "$cache"/*/Fuzz*; do
  [ -d "$dir" ] || continue
  rel=${dir#"$cache"/}
  pkg=${rel%/*} name=${rel##*/}
  [ -d "$pkg" ] || continue
  out=$pkg/testdata/fuzz/$name
  mkdir -p "$out"
  find "$dir" -type f -size -8k -printf '%s %p\n' | sort -n | awk -v n="$n" 'NR <= n' | while read -r _ f; do
    cp "$f" "$out/"
  done
  echo "$out: $(ls "$out" | wc -l) inputs"
done
