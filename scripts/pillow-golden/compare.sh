#!/bin/sh
# Compares `snapvlm preprocess` with the Pillow reference on any images.
# Usage: scripts/pillow-golden/compare.sh MODEL_DIR [--no-split] [--image-size L] IMAGE...
# Prints the max abs difference of pixel_values (0 means bit-exact).
set -eu
[ $# -ge 2 ] || { echo "usage: $0 MODEL_DIR [--no-split] [--image-size L] IMAGE..." >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
model=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/snapvlm" ./cmd/snapvlm)
"$tmp/snapvlm" preprocess --model "$model" --npy "$tmp/pv.npy" "$@"
PYTHONPATH="$here" /usr/bin/python3 "$here/compare.py" "$model" "$tmp/pv.npy" "$@"
