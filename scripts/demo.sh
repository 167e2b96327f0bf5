#!/usr/bin/env bash
# The main job, end to end on the embedded defaults:
#   photos -> check -> aligned crops -> identity split -> short training run (or the promoted model)
#   -> evaluation + threshold calibration on held-out people -> promote -> SQLite gallery -> web app.
# Usage: scripts/demo.sh [DATA] [WORK]   (make demo DATA=... WORK=...)
# Environment: TRAIN_MINUTES (default 15), BACKBONE (default resnet50), RETRAIN=1 to train even when a
# promoted model exists, PORT (default 8000), SERVE=0 to stop before serving.
set -euo pipefail
DATA=${1:-../shared/data/celeba-wild}
WORK=${2:-work/demo}
TRAIN_MINUTES=${TRAIN_MINUTES:-15}
BACKBONE=${BACKBONE:-resnet50}
PORT=${PORT:-8000}
FM=".venv/bin/facemetric"
TC="bash scripts/with-tcmalloc.sh"

if [ ! -d "$DATA" ]; then
  echo "demo: photo folder '$DATA' not found." >&2
  echo "      Pass your own: make demo DATA=/path/to/photos (one sub-folder of photos per person)." >&2
  exit 2
fi
mkdir -p "$WORK"
export FACEMETRIC_HOME=${FACEMETRIC_HOME:-$WORK/home}
echo "== state folder (promoted model, default gallery): $FACEMETRIC_HOME"

echo "== 1/7 check $DATA"
$FM data check "$DATA" --no-progress || true

echo "== 2/7 detect, align and crop every face -> $WORK/crops"
$TC $FM data align "$DATA" "$WORK/crops" --no-progress

echo "== 3/7 identity-disjoint split -> $WORK/split"
$FM data split "$WORK/crops" --val 0.1 --test 0.2 --seed 0 --out "$WORK/split"
# The held-out test people as a folder of links (no copies) for identification metrics.
rm -rf "$WORK/test"; mkdir -p "$WORK/test"
cut -d/ -f1 "$WORK/split/test.txt" | sort -u | while read -r person; do
  ln -s "$(cd "$WORK/crops/$person" && pwd)" "$WORK/test/$person"
done

if [ -f "$FACEMETRIC_HOME/best.pt" ] && [ "${RETRAIN:-0}" != 1 ]; then
  echo "== 4/7 using the promoted model $FACEMETRIC_HOME/best.pt (RETRAIN=1 trains a new one)"
  MODEL=best
else
  echo "== 4/7 train $BACKBONE for $TRAIN_MINUTES minutes -> $WORK/runs/demo"
  bash scripts/train.sh "$WORK/crops" --split "$WORK/split" --drop-singletons --backbone "$BACKBONE" \
    --out "$WORK/runs/demo" --max-minutes "$TRAIN_MINUTES" --no-progress
  MODEL="$WORK/runs/demo"
fi

echo "== 5/7 evaluate on held-out people and calibrate the match threshold"
# Verification pairs of the held-out people (every genuine pair, as many impostor pairs, 10 folds).
$FM data pairs "$WORK/test" --out "$WORK/test_pairs.tsv" --seed 0
identify=()  # identification metrics need a few held-out people
[ "$(ls "$WORK/test" | wc -l)" -ge 4 ] && identify=(--identify "$WORK/test")
$TC $FM evaluate "$MODEL" --pairs "$WORK/test_pairs.tsv" --root "$WORK/test" "${identify[@]}" \
  --aligned --out "$WORK/eval" --calibrate --quiet

echo "== 6/7 promote, then build the gallery -> $WORK/gallery.db"
if [ "$MODEL" != best ]; then
  $FM compare "$MODEL" --pairs "$WORK/test_pairs.tsv" --root "$WORK/test" --aligned --promote \
    --out "$WORK/compare" --quiet
fi
$TC $FM gallery build "$WORK/crops" --aligned --db "$WORK/gallery.db"
$FM gallery list --db "$WORK/gallery.db" | tail -n 5

if [ "${SERVE:-1}" = 0 ]; then
  echo "== done (SERVE=0): serve with  $FM serve --db $WORK/gallery.db"
  exit 0
fi
echo "== 7/7 serving http://127.0.0.1:$PORT/ (gallery page: /gallery, API docs: /docs); Ctrl-C stops"
exec $TC $FM serve --db "$WORK/gallery.db" --host 127.0.0.1 --port "$PORT"
