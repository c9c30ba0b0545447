#!/usr/bin/env bash
# Equal-budget comparisons: SODA (the world32-cpu recipe), recipe ablations and two baselines, each trained by the
# same trainer on the same procedural-world stream (same seed) for the same number of images, then evaluated side by
# side with `python -m soda.eval --compare` (see docs/METHOD.md, "Recipe study" and "Equal-budget comparison").
#   bash scripts/compare_baselines.sh [STEPS] [OUT] [ARM ...]
# STEPS x batch 32 images each (default 200 steps = 6,400 images); default arms: soda beta-vae autoencoder.
# A finished arm is skipped and an interrupted one resumes, so the script can be re-run after a stop.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-200}
OUT=${2:-runs/cmp}
shift $(( $# > 2 ? 2 : $# ))
ARMS=("$@")
[ ${#ARMS[@]} -eq 0 ] && ARMS=(soda beta-vae autoencoder)
PY=${PY:-.venv/bin/python}
declare -A RUNS=(
  [soda]=""
  # the paper's recipe: uniform t, one learning rate, masking from the first image
  [paper]="--model.diffusion.t_sampling=uniform --train.z_lr_mult=1 --train.mask_warmup=0 --train.mask_ramp=0"
  # the recipe with one lever removed at a time
  [no-low-snr]="--model.diffusion.t_sampling=uniform"
  [no-z-lr]="--train.z_lr_mult=1"
  [mask-on]="--train.mask_warmup=0 --train.mask_ramp=0"
  # the recipe under bf16 autocast (does it match fp32 held-out curves?)
  [bf16]="--train.amp=bf16"
  [no-sections]="--model.latent.n_sections=1"
  [cosine]="--model.diffusion.schedule=cosine"
  [beta-vae]="--model.kind=vae --model.beta=4"
  [autoencoder]="--model.kind=ae"
)
for name in "${ARMS[@]}"; do
  [ -n "${RUNS[$name]+x}" ] || { echo "unknown arm '$name' (known: ${!RUNS[*]})" >&2; exit 2; }
  if [ -f "$OUT/$name/ema/model.safetensors" ] && grep -q "\"step\": $STEPS" "$OUT/$name/latest.json" 2>/dev/null; then
    echo "== $name: done"; continue
  fi
  echo "== $name"
  RESUME=""; [ -f "$OUT/$name/latest.json" ] && RESUME="--resume"
  # shellcheck disable=SC2086
  $PY -m soda.train --config world32-cpu --train.out_dir="$OUT/$name" --train.steps="$STEPS" \
    --train.ckpt_every="${CKPT_EVERY:-250}" --train.sample_every="$STEPS" --train.threads="${THREADS:-1}" \
    ${RUNS[$name]} $RESUME
done
