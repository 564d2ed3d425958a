#!/usr/bin/env bash
# Installs what `make arm64` and `make test-arm64` need on a Debian/Ubuntu
# x86-64 machine, when missing: the aarch64 cross compiler, qemu-user to run
# arm64 binaries, and the arm64 libraries the build links (libjpeg, libwebp)
# or ONNX Runtime loads (libstdc++), from the arm64 multiarch archive.
# Idempotent and quick when everything is there.
set -euo pipefail
CC_ARM64=${CC_ARM64:-aarch64-linux-gnu-gcc}
need=()
command -v "$CC_ARM64" >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
arm64_header() { printf '#include <stdio.h>\n#include <%s>\n' "$1" | "$CC_ARM64" -E -x c - >/dev/null 2>&1; }
if command -v "$CC_ARM64" >/dev/null 2>&1; then
  arm64_header jpeglib.h || need+=(libjpeg62-turbo-dev:arm64)
  arm64_header webp/decode.h || need+=(libwebp-dev:arm64)
else
  need+=(libjpeg62-turbo-dev:arm64 libwebp-dev:arm64)
fi
[ -e /usr/lib/aarch64-linux-gnu/libstdc++.so.6 ] || need+=(libstdc++6:arm64)
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "sysdeps-arm64: missing ${need[*]}: install an aarch64 cross compiler, qemu-user and arm64 libjpeg/libwebp/libstdc++ (this script knows Debian/Ubuntu)" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "sysdeps-arm64: dpkg --add-architecture arm64" >&2
  $sudo dpkg --add-architecture arm64
fi
echo "sysdeps-arm64: installing ${need[*]}" >&2
$sudo apt-get update -qq >/dev/null
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
