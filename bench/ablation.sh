#!/usr/bin/env bash
# The weighting ablation end to end (docs/design.md → "Does the adaptive weighting help?"): every scheme in
# bench/ablation.py's SCHEMES at seeds 0 and 1, each trained with the default's recipe for 12,300 steps on CBSD432,
# two trainings side by side on one thread each (about 50 min a pair on the 2-core CPU, 2.5 h in all), each scored on all of
# CBSD68 on every setting, then the statistics, docs/results/ablation.{csv,md,png} and the section of docs/design.md.
# Rerun it after a stop or a restart: finished (scheme, seed)s are skipped, a training continues from its last.pt.
# Extra arguments go to `bench/ablation.py run` (for example --jobs 1 --threads 2, or --seeds 0).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PY:-.venv/bin/python}" bench/ablation.py run "$@"
