#!/usr/bin/env bash
# The main job: prepare a photo folder (later: train, evaluate, gallery, serve).
set -euo pipefail
DATA=${1:-../shared/data/celeba-wild}
WORK=${2:-work}
if [ ! -d "$DATA" ]; then
  echo "demo: photo folder '$DATA' not found." >&2
  echo "      Pass your own: make demo DATA=/path/to/photos (one sub-folder of images per person)." >&2
  exit 2
fi
mkdir -p "$WORK"
.venv/bin/facemetric data check "$DATA"
bash scripts/with-tcmalloc.sh .venv/bin/facemetric data align "$DATA" "$WORK/crops"
.venv/bin/facemetric data split "$WORK/crops" --out "$WORK/splits"
