#!/usr/bin/env bash
# One short training on a single-GPU machine without network access, continuing the shipped default.
#
#   bash training/gpu.sh OUT_DIR [MINUTES]        # on the GPU machine (MINUTES: at most 8, the default)
#   DRY_RUN=1 bash training/gpu.sh OUT_DIR        # a few CPU steps of the same command (tests/library/test_gpu_script.py)
#
# That machine's python3 has torch (2.11) but not kornia, pytorch-msssim or openpyxl: `make gpu-bundle` puts their
# wheels, and a copy of the training images (that machine cannot see ../shared), in training/gpu-bundle/ (ignored by
# git; pass it to the device tool's `carry`). The run trains in bf16 at a GPU-sized batch and patch from the current
# default model (`--init default`, with its architecture), stops cleanly after MINUTES (the STOP file, so last.pt
# holds the last complete epoch), and leaves last.pt, best.pt, events.jsonl and history.xlsx in OUT_DIR/run.
# The CPU training continues from it: `python -m denoise_core train ... --init OUT_DIR/run/last.pt`.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: training/gpu.sh OUT_DIR [MINUTES]}"
MINUTES="${2:-8}"
PY="${PY:-python3}"
BUNDLE=training/gpu-bundle
if awk "BEGIN {exit !($MINUTES > 8)}"; then echo "error: at most 8 minutes, got $MINUTES" >&2; exit 2; fi
if [ -d "$BUNDLE/wheels" ] && ! "$PY" -c "import kornia, pytorch_msssim, openpyxl" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/denoise-site "$BUNDLE"/wheels/*.whl
    export PYTHONPATH="/tmp/denoise-site${PYTHONPATH:+:$PYTHONPATH}"
fi
DATA="${DATA:-$BUNDLE/CBSD432}"
[ -d "$DATA" ] || DATA=../shared/data/train/CBSD432
mkdir -p "$OUT/run"
if [ -n "${DRY_RUN:-}" ]; then
    # Same recipe, CPU-sized: proves the command line, the init from the shipped model and the outputs.
    ARGS=(--device cpu --epochs 1 --steps-per-epoch 3 --batch-size 2 --patch-size 32 --amp off)
else
    ARGS=(--device cuda --epochs 400 --steps-per-epoch 200 --batch-size 64 --patch-size 128 --amp bf16)
    (sleep "$(awk "BEGIN {print int($MINUTES * 60)}")"; touch "$OUT/run/STOP") &
fi
PYTHONUNBUFFERED=1 "$PY" -m denoise_core train --data "$DATA" --out "$OUT/run" --init default --resume \
    --lr 2e-4 --val-ratio 0.05 --seed 0 --workers 4 --no-progress --temperature 1.0 --sensor-noise 3 \
    --clean-fraction 0.1 --loss-norm log --prior gaussian_noise=3,poisson_noise=2,camera_noise=3,camera_jpeg=2 \
    --degradations gaussian_noise,poisson_noise,salt_pepper,gaussian_blur,motion_blur,jpeg,downsample,camera_noise,channel_noise,camera_jpeg,mixed \
    "${ARGS[@]}" 2>&1 | tee "$OUT/train.log"
"$PY" -c "import torch; s = torch.load('$OUT/run/last.pt', weights_only=True); print('last.pt: epoch', s['epoch'], 'val', s['metrics'])"
