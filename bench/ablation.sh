#!/usr/bin/env bash
# Adaptive vs uniform degradation weights, end to end: two trainings that differ only in --uniform (same data,
# seed, model and step budget), then both benchmarked on every setting by bench/ablation.py.
# Budget and paths come from the environment; the defaults take about 1 h on 2 CPU cores:
#   EPOCHS=20 STEPS=60 RUNS=runs/ablation LIMIT=20 bash bench/ablation.sh
# Each training resumes if its folder already holds one, so the script can be rerun after a stop.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
EPOCHS="${EPOCHS:-20}"; STEPS="${STEPS:-60}"; RUNS="${RUNS:-runs/ablation}"; LIMIT="${LIMIT:-20}"
DATA="${DATA:-../shared/data/train/CBSD432}"; BENCH="${BENCH:-../shared/data/bench/CBSD68}"
for mode in adaptive uniform; do
    flag=(); [ "$mode" = uniform ] && flag=(--uniform)
    "$PY" -m denoise_core train --data "$DATA" --out "$RUNS/$mode" --epochs "$EPOCHS" --steps-per-epoch "$STEPS" \
        --lr 5e-4 --batch-size 16 --patch-size 64 --val-ratio 0.05 --seed 0 --workers 0 --no-progress --resume "${flag[@]}"
done
exec "$PY" bench/ablation.py --adaptive "$RUNS/adaptive" --uniform "$RUNS/uniform" --data "$BENCH" \
    --out bench/out/ablation --limit "$LIMIT" --no-progress
