#!/usr/bin/env bash
# The full quality benchmark: CBSD68 (68 images), every setting, every method, the shipped default model
# (denoise_core/weights/default.pt). Writes bench/out/cbsd68/{results.csv,summary.md,chart.html,chart.png}.
# Long: CBM3D alone takes about 16 s per image x 4 noise settings x 68 images on a free 2-core CPU.
# Extra arguments are passed on, e.g. `bash bench/quality.sh --checkpoint runs/default/best.pt --limit 5`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
exec "$PY" -m denoise_core bench --data ../shared/data/bench/CBSD68 --out bench/out/cbsd68 "$@"
