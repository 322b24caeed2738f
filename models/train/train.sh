#!/usr/bin/env bash
# Trains the reference segmentation model and writes models/reference/
# (model.onnx, manifest.toml, MODEL_CARD.md). Reproducible: fixed seeds, CPU.
# Usage: models/train/train.sh [STEPS]   (about 20 minutes on one core; the committed model was made this way)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
steps="${1:-2000}"
# Seeds used for training and for evaluation must never overlap; 9001+ belong to the
# Rust tests and fixtures.
train_seeds=$(seq 1 40)
heldout_seeds=$(seq 1001 1006)

if [ ! -x "$here/.venv/bin/python" ]; then
  python3 -m venv "$here/.venv"
fi
"$here/.venv/bin/pip" install -q -r "$here/requirements.txt"

cargo build -p venue-edge --manifest-path "$root/Cargo.toml"
synth="$root/target/debug/venue-edge"
data="$here/.data"
rm -rf "$data"
for scene in rink slope; do
  for seed in $train_seeds; do
    "$synth" synth --scene "$scene" --seed "$seed" --frames 300 --width 256 --height 144 \
      --out "$data/train/$scene-$seed" --log warn 2>/dev/null
  done
  for seed in $heldout_seeds; do
    "$synth" synth --scene "$scene" --seed "$seed" --frames 300 --width 256 --height 144 \
      --out "$data/heldout/$scene-$seed" --log warn 2>/dev/null
  done
done

OMP_NUM_THREADS=1 "$here/.venv/bin/python" "$here/train.py" --data "$data" --out "$root/models/reference" \
  --steps "$steps" --threads 1 \
  --train-seeds "1-40" --heldout-seeds "1001-1006"
