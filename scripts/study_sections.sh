#!/usr/bin/env bash
# Issue 21's section study at this machine's budget: arms that continue the bundled checkpoint's EMA weights
# (warm start, not from scratch) for the same number of images, on the same data stream and seed, with masking at
# full rates from the first step. Each arm writes runs/study-<name>/; score them with
#   python -m soda.eval runs/study-<name>/ema --labelfree-only
# Usage: bash scripts/study_sections.sh [steps]   (default 1000 steps = 32,000 images at batch 32)
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-1000}
PY=${PYTHON:-.venv/bin/python}
run_arm() {
  local name=$1; shift
  if [ -f "runs/study-$name/ema/model.safetensors" ] && grep -q "\"step\": $STEPS" "runs/study-$name/latest.json" 2>/dev/null; then
    echo "arm $name: done already"; return
  fi
  local resume=""
  [ -f "runs/study-$name/latest.json" ] && resume="--resume"
  "$PY" -m soda.train --config world32-cpu --train.out_dir="runs/study-$name" \
    --train.init_from=assets/checkpoints/world32 --train.steps="$STEPS" --train.seed=0 \
    --train.mask_warmup=0 --train.mask_ramp=0 --train.sample_minutes=0 --train.sample_every=100000 \
    --train.ckpt_every=250 --train.threads=2 $resume "$@"
}
run_arm control                                   # p_section 0.2, p_drop 0.1 (the bundled recipe)
run_arm psec50 --model.latent.p_section=0.5       # each section masked half the time
