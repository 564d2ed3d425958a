#!/bin/sh
# Regenerates internal/video/testdata/golden.json (and the small committed
# clips, when missing) from PyAV + torchvision + num2words (Debian packages).
# Usage: scripts/video-golden/regen.sh
set -eu
PY=/usr/bin/python3
if ! $PY -c 'import av, torch, torchvision, numpy, num2words' 2>/dev/null; then
	apt-get install -y python3-av python3-torchvision python3-numpy python3-num2words
fi
command -v ffmpeg >/dev/null || apt-get install -y ffmpeg
cd "$(dirname "$0")"
exec $PY gen.py
