#!/usr/bin/env bash
# Installs what the tests need besides Go and ONNX Runtime. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
# transformers.js, the independent implementation the differential tests run.
if [ -f scripts/jsref/package.json ]; then
  if ! command -v npm >/dev/null; then
    echo "deps: npm not found; the transformers.js reference tests will be skipped" >&2
  elif [ ! -d scripts/jsref/node_modules/@huggingface/transformers ]; then
    echo "deps: installing transformers.js for the reference tests" >&2
    (cd scripts/jsref && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
