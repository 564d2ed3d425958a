#!/usr/bin/env bash
# The README's main job: answer a question about assets/sample.jpg.
# Uses HuggingFaceTB/SmolVLM2-256M-Video-Instruct when the Hugging Face Hub is
# reachable (downloaded once into the standard HF cache); otherwise a generated
# random-weight test model, and says so before any output.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=bin/snapvlm
REPO=${SNAPVLM_DEMO_MODEL:-HuggingFaceTB/SmolVLM2-256M-Video-Instruct}
IMAGE=${1:-assets/sample.jpg}
QUESTION=${2:-Can you describe this image?}

if model_dir=$($BIN pull --quiet "$REPO" 2>/tmp/snapvlm-demo-pull.log); then
  echo "== model: $REPO"
else
  model_dir=.cache/models/tiny512
  if [ ! -f "$model_dir/config.json" ]; then
    bin/snapvlm-testmodel --preset tiny512 --variants fp32,q4 --out "$model_dir" --quiet
  fi
  cat <<MSG
== NOTE: the Hugging Face Hub is not reachable from here ($(tail -n 1 /tmp/snapvlm-demo-pull.log)).
== Using a generated SmolVLM-format TEST model with RANDOM weights ($model_dir).
== It runs the full pipeline, but its words are MEANINGLESS.
MSG
fi
echo "== image: $IMAGE"
echo "== question: $QUESTION"
echo
$BIN run --model "$model_dir" --image "$IMAGE" --max-tokens 48 --verbose "$QUESTION"
