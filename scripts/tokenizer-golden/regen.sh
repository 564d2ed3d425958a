#!/bin/sh
# Regenerates internal/tokenizer/testdata: the tiny tokenizer (Go, bpetrain)
# and the golden encodings/decodings from the official Hugging Face
# tokenizers (npm tokenizers@0.23.2, installed into this folder).
#
# usage: scripts/tokenizer-golden/regen.sh [SMOLVLM_TOKENIZER_JSON]
# default tokenizer: $SNAPVLM_TEST_TOKENIZER, else ../shared/smolvlm/tokenizer.json
# beside the repository (see internal/testtok).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
smol=${1:-${SNAPVLM_TEST_TOKENIZER:-$repo/../shared/smolvlm/tokenizer.json}}
out=$repo/internal/tokenizer/testdata
[ -f "$smol" ] || { echo "regen.sh: $smol not found" >&2; exit 1; }
(cd "$here" && npm install --no-audit --no-fund --silent)
(cd "$repo" && go run ./internal/bpetrain/cmd/gentiny -out "$out/tiny_tokenizer.json")
node "$here/gen.js" "$smol" "$out"
