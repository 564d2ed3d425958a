#!/usr/bin/env bash
# bench-report: snapvlm against transformers.js and llama.cpp on this
# machine, and against its memory bandwidth, in one markdown table per
# model size (make bench-report; never part of make test).
#
#   - Models: snapvlm-testmodel --preset real256m and real500m (random
#     weights, the real sizes and file structure; q4 and int8 files).
#   - snapvlm: `snapvlm bench --json` with no --dtype (its defaults), one
#     tile (81 prompt tokens) and the split sample photo (13 tiles, 876),
#     in turns for three rounds (medians).
#   - transformers.js 4.3.1 on its q4 files: `snapvlm-jsref` (same prompt
#     ids and pixel values).
#   - llama.cpp: its own llama-bench, built natively from the source
#     node-llama-cpp@3.21.1 ships (llama/gitRelease.bundle), on GGUFs of
#     the same text dimensions with random weights (scripts/bench/
#     gguf_random.py, quantized by llama-quantize to Q4_0 and Q8_0).
#   - The limits: decode tokens/s if every weight byte of the decoder file,
#     and of the float32 key/value cache so far, were read once per token
#     at the read bandwidth scripts/bench/membw.c measures; prefill tokens/s if every weight byte were one int8
#     multiply-add at the rate ONNX Runtime's 8-bit matmul reaches here
#     (scripts/bench/matmul, which also measures float32).
#   - Concurrent answers: `snapvlm bench --streams 4` (1, 2 and 4 text
#     answers at once), with the defaults and with the int8 decoder file
#     (--decoder-dtype int8, the default where snapvlm's 4-bit kernel does
#     not run), which is also timed on the one-tile question and the split
#     photo.
#
# The test models get the generator's small BPE tokenizer, so their
# vocabulary (and embedding and lm_head) is smaller than SmolVLM2's 49,280;
# BENCH_TOKENIZER=path/to/tokenizer.json (the real SmolVLM one) gives them
# the real vocabulary. The report states each model's vocabulary size.
#
# Work files (the llama.cpp build, models, GGUFs) go to BENCH_WORK
# (default ~/.cache/snapvlm/bench); the table to BENCH_REPORT (default
# bench-report.md). Runs back to back; the machine should be quiet.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${BENCH_WORK:-$HOME/.cache/snapvlm/bench}
report=${BENCH_REPORT:-bench-report.md}
tokens=${BENCH_TOKENS:-64}
threads=$(nproc)
mkdir -p "$work"
# Debian's python3, where sysdeps.sh installs numpy (not a pyenv shim).
py=/usr/bin/python3
[ -x "$py" ] || py=python3

scripts/sysdeps.sh bench
make --no-print-directory build setup deps >/dev/null
go build -o "$work/snapvlm-jsref" ./cmd/snapvlm-jsref

llama=$work/llama.cpp
if [ ! -x "$llama/build/bin/llama-bench" ] || [ ! -x "$llama/build/bin/llama-quantize" ]; then
  echo "bench-report: building llama.cpp's llama-bench (node-llama-cpp@3.21.1's source, a few minutes)" >&2
  rm -rf "$llama" "$work/package"
  (cd "$work" && npm pack --silent node-llama-cpp@3.21.1 >/dev/null &&
    tar xzf node-llama-cpp-3.21.1.tgz package/llama/gitRelease.bundle package/llama/llama.cpp.info.json &&
    git clone -q package/llama/gitRelease.bundle llama.cpp 2>/dev/null)
  # Native flags without AMX: CPUs that list AMX in cpuid may still fault
  # on its instructions where the kernel or hypervisor does not grant the
  # tile state (this machine: SIGILL on tilezero in ggml's AMX matmul).
  noamx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  ${CC:-cc} $noamx -x c -c /dev/null -o /dev/null 2>/dev/null || noamx=
  cmake -S "$llama" -B "$llama/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
    "-DCMAKE_C_FLAGS=$noamx" "-DCMAKE_CXX_FLAGS=$noamx" \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF >"$work/llama-build.log" 2>&1 ||
    { tail -30 "$work/llama-build.log" >&2; exit 1; }
  cmake --build "$llama/build" -j"$threads" --target llama-bench llama-quantize >>"$work/llama-build.log" 2>&1 ||
    { tail -30 "$work/llama-build.log" >&2; exit 1; }
fi
llama_tag=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["tag"])' "$work/package/llama/llama.cpp.info.json" 2>/dev/null || echo "?")

${CC:-cc} -O3 -ffast-math -march=native -pthread -o "$work/membw" scripts/bench/membw.c
bandwidth=$("$work/membw" "$threads" 1024)
echo "bench-report: read bandwidth $bandwidth GB/s ($threads threads)" >&2
go run ./scripts/bench/matmul -threads "$threads" >"$work/matmul.json"

for preset in real256m real500m; do
  dir=$work/$preset
  if [ ! -f "$dir/onnx/decoder_model_merged_int8.onnx" ]; then
    rm -rf "$dir"
    tok=()
    [ -n "${BENCH_TOKENIZER:-}" ] && tok=(--tokenizer "$BENCH_TOKENIZER")
    bin/snapvlm-testmodel --quiet --preset "$preset" --variants q4,int8 "${tok[@]}" --out "$dir"
  fi
  f32=$work/$preset-f32.gguf
  [ -f "$f32" ] || PYTHONPATH="$llama/gguf-py" "$py" scripts/bench/gguf_random.py "$dir" "$f32"
  for q in Q4_0 Q8_0; do
    g=$work/$preset-$q.gguf
    [ -f "$g" ] || "$llama/build/bin/llama-quantize" "$f32" "$g" "$q" >/dev/null 2>&1
    echo "bench-report: $preset llama-bench $q" >&2
    "$llama/build/bin/llama-bench" -m "$g" -t "$threads" -p 876 -n "$tokens" -d 0,876 -r 3 -o json >"$work/$preset-llama-$q.json" 2>/dev/null
  done
  # Cold: an empty cache (the attention rewrite and its probe, the graphs
  # optimised and saved); then the user cache is warmed for this model, so
  # the timed runs below load warm as users' second loads do.
  ortlib=$(bin/snapvlm version | sed -n 's/^ONNX Runtime [^ ]* (\(.*\))$/\1/p')
  rm -rf "$work/cold-cache"
  echo "bench-report: $preset snapvlm, cold load" >&2
  XDG_CACHE_HOME=$work/cold-cache SNAPVLM_ORT_LIB=$ortlib bin/snapvlm bench --model "$dir" --image assets/sample.jpg --no-split --max-tokens 1 --runs 1 --json >"$work/$preset-snapvlm-cold.json" 2>/dev/null
  rm -rf "$work/cold-cache"
  bin/snapvlm bench --model "$dir" --image assets/sample.jpg --no-split --max-tokens 1 --runs 1 >/dev/null 2>&1
  # The one tile and the split photo take turns, one generation each, for
  # three rounds (report.py takes each number's median): the 876 / 81 row
  # divides the two, and this machine's speed drifts within the minutes
  # that three runs of one and then three of the other would take.
  rm -f "$work/$preset-snapvlm-one"*.json "$work/$preset-snapvlm-split"*.json
  for round in 1 2 3; do
    for split in one split; do
      flag=--no-split
      [ $split = split ] && flag=
      echo "bench-report: $preset snapvlm, $split, round $round" >&2
      bin/snapvlm bench --model "$dir" --image assets/sample.jpg $flag --max-tokens "$tokens" --runs 1 --json >"$work/$preset-snapvlm-$split-$round.json" 2>/dev/null
    done
  done
  for split in one split; do
    flag=--no-split
    [ $split = split ] && flag=
    echo "bench-report: $preset transformers.js, $split" >&2
    "$work/snapvlm-jsref" --model "$dir" --image assets/sample.jpg $flag --max-tokens "$tokens" --js-dtype q4 >"$work/$preset-jsref-$split.json" 2>/dev/null
  done
  echo "bench-report: $preset snapvlm, the int8 decoder file" >&2
  alt=(--decoder-dtype int8)
  # Warm, as the default was: its first load may make and probe its rewrite.
  bin/snapvlm bench --model "$dir" "${alt[@]}" --image assets/sample.jpg --no-split --max-tokens 1 --runs 1 >/dev/null 2>&1
  bin/snapvlm bench --model "$dir" "${alt[@]}" --image assets/sample.jpg --no-split --max-tokens "$tokens" --runs 3 --json >"$work/$preset-snapvlm-alt-one.json" 2>/dev/null
  bin/snapvlm bench --model "$dir" "${alt[@]}" --image assets/sample.jpg --max-tokens "$tokens" --runs 3 --json >"$work/$preset-snapvlm-alt-split.json" 2>/dev/null
  echo "bench-report: $preset snapvlm, 1, 2 and 4 streams" >&2
  bin/snapvlm bench --model "$dir" --question "Write a story about a red square." --max-tokens "$tokens" --runs 3 --streams 4 --json >"$work/$preset-snapvlm-streams.json" 2>/dev/null
  bin/snapvlm bench --model "$dir" "${alt[@]}" --question "Write a story about a red square." --max-tokens "$tokens" --runs 3 --streams 4 --json >"$work/$preset-snapvlm-alt-streams.json" 2>/dev/null
done

"$py" scripts/bench/report.py "$work" "$bandwidth" "$threads" "$llama_tag" "$(bin/snapvlm version 2>/dev/null | head -1)" >"$report"
echo "bench-report: wrote $report" >&2
cat "$report"
