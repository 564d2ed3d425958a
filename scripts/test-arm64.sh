#!/usr/bin/env bash
# make test-arm64: runs the linux/arm64 build of snapvlm and libsnapvlm under
# qemu-aarch64 (user-mode emulation; the arm64 loader and libraries come from
# Debian's arm64 multiarch packages, see scripts/sysdeps-arm64.sh) with the
# arm64 ONNX Runtime of the sha-pinned onnxruntime-node tarball, and
# checks that greedy answers equal the x86-64 build's token for token: the
# CLI on a generated tiny model and assets/sample.jpg (split into tiles and
# --no-split), and the C test program (capi/testdata/capitest.c)
# cross-compiled and linked with the arm64 libsnapvlm.so.
#
# Expects `make build arm64` to have run (make test-arm64 does). Timings
# printed here are emulated: evidence that it runs, not arm64 speed.
set -euo pipefail
cd "$(dirname "$0")/.."
host=bin/snapvlm
arm=build/arm64
CC_ARM64=${CC_ARM64:-aarch64-linux-gnu-gcc}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# How qemu runs the arm64 programs:
# - -L "$work/qroot": qemu 7.2 (Debian 12) passes /proc/cpuinfo through from
#   the x86 host, and ONNX Runtime's cpuinfo, finding no ARM processor in it,
#   crashes (SIGSEGV at NULL) while the library loads. qemu looks a path up
#   under -L first, so an arm64 /proc/cpuinfo there (one Neoverse-N1 entry
#   per host CPU) is what the library reads; every other path falls through
#   to the host's files (the multiarch loader and libraries). Newer qemu
#   (8.1+) fakes /proc/cpuinfo itself. (-L pointing at a whole arm64 root
#   such as /usr/aarch64-linux-gnu makes cgo binaries hang at start-up.)
# - -cpu neoverse-n1: qemu's default "max" CPU has SVE/SME, which ONNX
#   Runtime then uses and qemu emulates ~8x slower (37 s vs 4.5 s of CPU for
#   one tiny-model answer here).
mkdir -p "$work/qroot/proc"
for i in $(seq 0 $(($(getconf _NPROCESSORS_CONF) - 1))); do
  printf 'processor\t: %d\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n' "$i"
done >"$work/qroot/proc/cpuinfo"
qemu=(qemu-aarch64 -cpu neoverse-n1 -L "$work/qroot")
# One intra-op thread on both sides: spinning pool threads are costly
# under emulation. The exact q4 decoder on both: where snapvlm's 4-bit
# kernel runs (an x86-64 CPU with AVX-512 VNNI) the default decoder is q4
# with int8 activations, which arm64 does not default to.
export CAPITEST_OPTIONS='{"threads": 1, "dtype": "q4"}'
fail() { echo "test-arm64: FAIL: $*" >&2; exit 1; }
tokens() { tr -d ' \n' | grep -o '"tokens":\[[^]]*\]'; }
timed() { local t0=$SECONDS; "$@"; echo "test-arm64:   ($((SECONDS - t0)) s)" >&2; }

# ONNX Runtime for linux/arm64: the arm64 binary's own `setup` installs it
# (npm tarball, sha256-pinned) into the user cache, under linux-arm64/.
timed "${qemu[@]}" "$arm/snapvlm" setup --quiet

model="$work/tiny512"
"$(dirname "$host")/snapvlm-testmodel" --preset tiny512 --out "$model" --variants q4 --generate-tokenizer --quiet
q="What is in this picture?"
img=assets/sample.jpg

# Split: --image-size 1024 gives 2x2 tiles + the global view (5 tiles, not
# the 13 of the full size: the vision encoder dominates emulated time).
for split in "--image-size 1024" --no-split; do
  echo "test-arm64: snapvlm run $split" >&2
  want=$("$host" run --threads 1 --dtype q4 --model "$model" --image "$img" $split --max-tokens 24 --json "$q" | tokens)
  got=$(timed "${qemu[@]}" "$arm/snapvlm" run --threads 1 --dtype q4 --model "$model" --image "$img" $split --max-tokens 24 --json "$q" | tokens)
  [ -n "$want" ] || fail "no tokens from the x86-64 run"
  [ "$got" = "$want" ] || fail "arm64 tokens differ from x86-64 ($split):
  x86-64: $want
  arm64:  $got"
  echo "test-arm64:   tokens equal: $got" >&2
done

# The C test program against the arm64 libsnapvlm.so.
"$CC_ARM64" -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -O1 -I capi \
  -o "$arm/capitest" capi/testdata/capitest.c -L"$arm" -lsnapvlm -Wl,-rpath,'$ORIGIN' -lpthread
echo "test-arm64: capitest generate (C API, no_split)" >&2
want=$("$host" run --threads 1 --dtype q4 --model "$model" --image "$img" --no-split --max-tokens 24 --json "$q" | tokens)
out=$(timed "${qemu[@]}" "$arm/capitest" generate "$model" "$img" "$q" 24)
got=$(printf '%s\n' "$out" | grep '^RESULT ' | cut -d' ' -f2- | tokens)
[ "$got" = "$want" ] || fail "arm64 C API tokens differ from x86-64:
  x86-64: $want
  arm64:  $got"
echo "test-arm64:   tokens equal: $got" >&2
echo "test-arm64: capitest threads (2 threads, one model)" >&2
out=$(timed "${qemu[@]}" "$arm/capitest" threads "$model" "$img" "$q" 24 2)
n=0
while read -r line; do
  [ "$(printf '%s\n' "$line" | tokens)" = "$want" ] || fail "a thread's tokens differ: $line"
  n=$((n + 1))
done < <(printf '%s\n' "$out" | grep '^RESULT ' | cut -d' ' -f2-)
[ "$n" -eq 2 ] || fail "threads: $n results, want 2"
echo "test-arm64: capitest cancel, errors" >&2
timed "${qemu[@]}" "$arm/capitest" cancel "$model" "$img" "$q" >/dev/null
timed "${qemu[@]}" "$arm/capitest" errors "$model" >/dev/null
echo "test-arm64: ok" >&2
