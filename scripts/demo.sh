#!/usr/bin/env bash
# The main job, end to end:
#   photos -> check -> aligned crops -> a gallery with the pretrained model (usable at once)
#   -> identity split -> a few minutes of metric-learning fine-tuning on the user's people
#   -> pretrained vs fine-tuned on held-out people -> promote the better -> calibrate its threshold
#   on the held-out people -> re-embed the gallery -> web app.
# Usage: scripts/demo.sh [DATA] [WORK]   (make demo DATA=... WORK=...)
# Environment: TRAIN_MINUTES (default 5), BACKBONE (unset: fine-tune the pretrained dlib network;
# a name such as resnet50 trains that backbone from scratch instead), RETRAIN=1 to train even when
# a promoted model exists, PORT (default 8000), SERVE=0 to stop before serving.
set -euo pipefail
# Ctrl-C (or a TERM) stops the demo with one line and exit status 0, so `make demo` does not add
# "make: *** [demo] Error 130 / Terminated" under it.
stopped() { echo; echo "demo: stopped; what was done is in ${WORK:-work/demo}"; exit 0; }
trap stopped INT TERM
DATA=${1:-../shared/data/celeba-wild}
WORK=${2:-work/demo}
TRAIN_MINUTES=${TRAIN_MINUTES:-5}
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
echo "== state folder (promoted model, converted pretrained model): $FACEMETRIC_HOME"
$FM models

echo "== 1/8 check $DATA"
$FM data check "$DATA" --no-progress || true

echo "== 2/8 detect, align and crop every face (dlib chips) -> $WORK/crops"
$TC $FM data align "$DATA" "$WORK/crops" --no-progress

echo "== 3/8 gallery with the pretrained model, no training needed -> $WORK/gallery.db"
$TC $FM gallery build "$WORK/crops" --db "$WORK/gallery.db" --model dlib
$FM gallery list --db "$WORK/gallery.db" | tail -n 3

people=$(find "$WORK/crops" -mindepth 1 -maxdepth 1 -type d | wc -l)
if [ "$people" -lt 10 ]; then
  echo "== 4/8 $people people: too few to fine-tune on some and judge the result on others (10 needed)"
else
  echo "== 4/8 identity-disjoint split -> $WORK/split"
  # 10% of the people for validation and 20% for the test, but at least 2 and 3 people: a small
  # photo folder still gets people to calibrate on and to judge the fine-tune by.
  fraction() { awk -v n="$people" -v f="$1" -v least="$2" \
    'BEGIN { if (f * n < least) f = (least + 0.1) / n; printf "%.3f", f }'; }
  $FM data split "$WORK/crops" --val "$(fraction 0.1 2)" --test "$(fraction 0.2 3)" --seed 0 \
    --out "$WORK/split"
  # The held-out test people as a folder of links (no copies) into the crops.
  rm -rf "$WORK/test"; mkdir -p "$WORK/test"
  cut -d/ -f1 "$WORK/split/test.txt" | sort -u | while read -r person; do
    ln -s "$(cd "$WORK/crops/$person" && pwd)" "$WORK/test/$person"
  done
  # Verification pairs of the held-out people (every genuine pair, as many impostor pairs).
  $FM data pairs "$WORK/test" --out "$WORK/test_pairs.tsv" --seed 0
fi

if [ -f "$FACEMETRIC_HOME/best.pt" ] && [ "${RETRAIN:-0}" != 1 ]; then
  echo "== 5/8 using the promoted model $FACEMETRIC_HOME/best.pt (RETRAIN=1 fine-tunes again)"
elif [ "$people" -lt 10 ]; then
  echo "== 5/8 no fine-tune: the pretrained model stays"
else
  if [ -n "${BACKBONE:-}" ]; then
    echo "== 5/8 train $BACKBONE from scratch for $TRAIN_MINUTES minutes -> $WORK/runs/demo"
    model=(--backbone "$BACKBONE")
  else
    echo "== 5/8 fine-tune the pretrained network for $TRAIN_MINUTES minutes -> $WORK/runs/demo"
    model=()
  fi
  rm -rf "$WORK/runs/demo"
  bash scripts/train.sh "$WORK/crops" --split "$WORK/split" --drop-singletons "${model[@]}" \
    --out "$WORK/runs/demo" --max-minutes "$TRAIN_MINUTES" --no-progress

  echo "== 6/8 pretrained vs fine-tuned on the held-out people; promote the better"
  # compare adds the fine-tune's base (dlib) by itself and prefers it on a tie. dlib:flip (both
  # public domain) is always in; the opt-in faceres composites only with FACERES=1.
  # A promotion it cannot justify (a win it cannot calibrate on these people) is refused, not fatal.
  extra=(dlib:flip)
  if [ "${FACERES:-0}" = 1 ]; then extra+=(dlib+faceres dlib+faceres:flip); fi
  $TC $FM compare dlib "${extra[@]}" "$WORK/runs/demo" --pairs "$WORK/test_pairs.tsv" --root "$WORK/test" \
    --metric auc --promote --out "$WORK/compare" --quiet ||
    echo "demo: nothing promoted (the reason is above); the pretrained model stays"
fi

echo "== 7/8 the promoted model's threshold; re-embed the gallery"
if $FM models | grep -qE "^default model: dlib|promoted: dlib(:flip|\+faceres(:flip)?)?\)"; then
  # Its threshold was calibrated on millions of pairs; a few held-out people would give a noisier one.
  echo "the pretrained model keeps its calibrated threshold"
else
  $TC $FM evaluate best --pairs "$WORK/test_pairs.tsv" --root "$WORK/test" --calibrate \
    --out "$WORK/eval" --quiet || echo "demo: kept the threshold calibrated at the end of training"
fi
$TC $FM gallery reembed --db "$WORK/gallery.db"

if [ "${SERVE:-1}" = 0 ]; then
  echo "== done (SERVE=0): serve with  $FM serve --db $WORK/gallery.db"
  exit 0
fi
echo "== 8/8 serving http://127.0.0.1:$PORT/ (gallery page: /gallery, API docs: /docs); Ctrl-C stops"
echo "   (another port: make demo PORT=8080; the same later: .venv/bin/facemetric serve --db $WORK/gallery.db)"
status=0
$TC $FM serve --db "$WORK/gallery.db" --host 127.0.0.1 --port "$PORT" || status=$?
# A server stopped by Ctrl-C may exit 0 on its own (bash then runs no trap): the same line.
if [ "$status" = 0 ] || [ "$status" = 130 ]; then stopped; fi
exit "$status"
