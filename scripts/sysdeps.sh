#!/usr/bin/env bash
# Installs what snapvlm needs from the system, when missing.
#   scripts/sysdeps.sh        the C libraries the build links with cgo:
#                             libjpeg(-turbo) and libwebp, the decoders Pillow
#                             uses, so images decode bit for bit as in Python.
#   scripts/sysdeps.sh test   those, plus what the tests run: ffmpeg (video
#                             input), chromium (the server's page in a real
#                             browser), a JDK, kotlinc and kotlinx-coroutines
#                             (the Android binding's compile check).
#   scripts/sysdeps.sh bench  those, plus what make bench-report builds and
#                             runs llama.cpp with: cmake, python3 with numpy
#                             and yaml (llama.cpp's gguf-py).
# `make demo` needs only the first; `make test` asks for both.
# Idempotent and quick when everything is there.
set -euo pipefail
need=()
have_header() { echo "#include <$1>" | ${CC:-cc} -E -x c - >/dev/null 2>&1; }
have_header stdio.h || { echo "sysdeps: no working C compiler (cc); install gcc or clang" >&2; exit 1; }
# jpeglib.h needs stdio.h first, so test with both.
printf '#include <stdio.h>\n#include <jpeglib.h>\n' | ${CC:-cc} -E -x c - >/dev/null 2>&1 || need+=(jpeg)
have_header webp/decode.h || need+=(webp)
if [ "${1:-}" = test ]; then
# ffmpeg/ffprobe: video decoding (internal/video, `--video`).
{ command -v ffmpeg && command -v ffprobe; } >/dev/null 2>&1 || need+=(ffmpeg)
# chromium: the browser test of `snapvlm serve`'s page (server/page_test.go).
{ command -v chromium || command -v chromium-browser || command -v google-chrome; } >/dev/null 2>&1 || need+=(chromium)
# JDK (jni.h, javac), kotlinc and kotlinx-coroutines: the Android binding's
# compile check (bindings/android).
[ -e /usr/lib/jvm/default-java/include/jni.h ] || command -v javac >/dev/null 2>&1 || need+=(jdk)
command -v kotlinc >/dev/null 2>&1 || need+=(kotlin)
[ -e /usr/share/java/kotlinx-coroutines-core.jar ] || need+=(coroutines)
fi
if [ "${1:-}" = bench ]; then
command -v cmake >/dev/null 2>&1 || need+=(cmake)
# Debian's python3 (where apt installs numpy), not a pyenv or venv one.
py=/usr/bin/python3
[ -x "$py" ] || py=python3
"$py" -c 'import numpy' >/dev/null 2>&1 || need+=(numpy)
"$py" -c 'import yaml' >/dev/null 2>&1 || need+=(yaml)
fi
[ ${#need[@]} -eq 0 ] && exit 0

if command -v apt-get >/dev/null 2>&1; then
  pkgs=()
  for n in "${need[@]}"; do
    case $n in
      jpeg) pkgs+=(libjpeg62-turbo-dev) ;;
      webp) pkgs+=(libwebp-dev) ;;
      ffmpeg) pkgs+=(ffmpeg) ;;
      chromium) pkgs+=(chromium) ;;
      jdk) pkgs+=(default-jdk-headless) ;;
      kotlin) pkgs+=(kotlin) ;;
      coroutines) pkgs+=(libkotlinx-coroutines-java) ;;
      cmake) pkgs+=(cmake) ;;
      numpy) pkgs+=(python3-numpy) ;;
      yaml) pkgs+=(python3-yaml) ;;
    esac
  done
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  echo "sysdeps: installing ${pkgs[*]}" >&2
  $sudo apt-get update -qq >/dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
elif command -v brew >/dev/null 2>&1; then
  echo "sysdeps: installing jpeg-turbo webp ffmpeg with Homebrew" >&2
  brew install jpeg-turbo webp ffmpeg
  if [[ " ${need[*]} " == *" chromium "* ]]; then brew install --cask chromium; fi
else
  echo "sysdeps: missing: ${need[*]}; install libjpeg(-turbo) and libwebp development packages and ffmpeg, and chromium" >&2
  exit 1
fi
