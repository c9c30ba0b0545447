#!/usr/bin/env bash
# The fixed-budget comparison of the evaluation issue: SODA, three SODA ablations and two baselines, each trained by
# the same trainer on the same procedural-world stream for the same number of images, then evaluated side by side.
#   bash scripts/compare_baselines.sh [STEPS] [OUT]        (default 200 steps x batch 32 = 6,400 images each)
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-200}
OUT=${2:-runs/cmp}
PY=${PY:-.venv/bin/python}
declare -A RUNS=(
  [soda]=""
  [no-sections]="--model.latent.n_sections=1"
  [no-masking]="--model.latent.p_section=0 --model.latent.p_drop=0"
  [cosine]="--model.diffusion.schedule=cosine"
  [beta-vae]="--model.kind=vae --model.beta=4"
  [autoencoder]="--model.kind=ae"
)
for name in soda no-sections no-masking cosine beta-vae autoencoder; do
  if [ -f "$OUT/$name/ema/model.safetensors" ] && grep -q "\"step\": $STEPS" "$OUT/$name/latest.json" 2>/dev/null; then
    echo "== $name: done"; continue
  fi
  echo "== $name"
  RESUME=""; [ -f "$OUT/$name/latest.json" ] && RESUME="--resume"
  # shellcheck disable=SC2086
  $PY -m soda.train --config world32-cpu --train.out_dir="$OUT/$name" --train.steps="$STEPS" \
    --train.ckpt_every=50 --train.sample_every="$STEPS" --train.threads="${THREADS:-1}" ${RUNS[$name]} $RESUME
done
