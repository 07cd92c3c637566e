#!/usr/bin/env bash
# One short training on a single-GPU machine without network access, continuing the shipped default, with the CUDA
# tests run beside it.
#
#   bash training/gpu.sh OUT_DIR [MINUTES]        # on the GPU machine (MINUTES of training: at most 8, the default)
#   PATCH_SIZE=64 bash training/gpu.sh OUT_DIR 3  # another training patch size (128 unless told)
#   DRY_RUN=1 bash training/gpu.sh OUT_DIR        # a few CPU steps of the same command (tests/library/test_gpu_script.py)
#
# That machine's python3 has torch (2.11) but not kornia, pytorch-msssim or openpyxl: `make gpu-bundle` puts their
# wheels, and a copy of the training images (that machine cannot see ../shared), in training/gpu-bundle/ (ignored by
# git; pass it to the device tool's `carry`). The run fine-tunes the current default model (`--init default`, its
# architecture and TrainConfig's recipe) in bf16 at a GPU-sized batch and patch; `--minutes` times its steps first and
# sizes the cosine schedule to end with the time, and a STOP file 90 s later is the backstop (last.pt then holds the
# last complete epoch). OUT_DIR/run gets last.pt, best.pt, events.jsonl and history.xlsx; OUT_DIR gets train.log,
# cuda-tests.log, and best-model.pt / last-model.pt (model-only copies: the resume state with its optimiser is too
# large to fetch). The CPU continues from either: `python -m denoise_core train ... --init OUT_DIR/last-model.pt`.
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
    ARGS=(--device cpu --epochs 1 --steps-per-epoch 3 --batch-size 2 --patch-size 32 --amp off --workers 0)
else
    # 128-px patches: the coarse part of real camera noise (periods over 16 px) needs more context than 64 px give.
    WORKERS=$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))
    ARGS=(--device cuda --minutes "$MINUTES" --steps-per-epoch 200 --batch-size 64 --patch-size "${PATCH_SIZE:-128}" --amp bf16
          --workers "$WORKERS")
    (sleep "$(awk "BEGIN {print int($MINUTES * 60 + 90)}")"; touch "$OUT/run/STOP") >/dev/null 2>&1 &
    STOPPER=$!
    (PYTHONUNBUFFERED=1 "$PY" -m pytest -q -p no:cacheprovider tests/library/test_cuda.py >"$OUT/cuda-tests.log" 2>&1;
     echo "pytest exit $?" >>"$OUT/cuda-tests.log") &
    TESTS=$!
fi
PYTHONUNBUFFERED=1 "$PY" -m denoise_core train --data "$DATA" --out "$OUT/run" --init default --resume \
    --lr 2e-4 --val-ratio 0.05 --seed 0 --no-progress "${ARGS[@]}" 2>&1 | tee "$OUT/train.log"
cp "$OUT/run/best.pt" "$OUT/best-model.pt"  # best.pt holds the model alone already
"$PY" - "$OUT" <<'PY'
import sys
from pathlib import Path

from denoise_core.checkpoint import load_checkpoint, model_file_from_resume, save_checkpoint

out = Path(sys.argv[1])
last = load_checkpoint(out / "run" / "last.pt")
print("last.pt: epoch", last["epoch"], "val", last["metrics"])
save_checkpoint(out / "last-model.pt", model_file_from_resume(last))
PY
if [ -n "${TESTS:-}" ]; then wait "$TESTS" || true; tail -n 5 "$OUT/cuda-tests.log"; kill "$STOPPER" 2>/dev/null || true; fi
