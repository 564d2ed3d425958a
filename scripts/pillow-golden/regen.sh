#!/bin/sh
# Regenerates internal/imageproc/testdata from Pillow (Debian python3-pil).
# Usage: scripts/pillow-golden/regen.sh
set -eu
PY=/usr/bin/python3
if ! $PY -c 'import PIL, numpy' 2>/dev/null; then
	apt-get install -y python3-pil python3-numpy
fi
cd "$(dirname "$0")"
exec $PY gen.py
