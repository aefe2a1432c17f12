#!/usr/bin/env bash
# The demo: set up, write a synthetic Kinetics-format dataset, train a small SlowOnly and a small
# SlowFast on the CPU, run the multi-view test, and print each model's test accuracy next to
# chance. Idempotent: every run starts from a fresh dataset and fresh output folders under
# $DEMO_DIR (default output/demo). Needs no GPU; about 8 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
PY=${PYTHON:-python3}
DEMO_DIR=${DEMO_DIR:-output/demo}
DATA="$DEMO_DIR/data"
NUM_CLASSES=4
start=$(date +%s)

rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR"
echo "[demo] writing a synthetic dataset to $DATA"
"$PY" tools/make_synthetic_dataset.py --out "$DATA" --num-classes "$NUM_CLASSES" \
  --videos-per-class 48 --eval-videos-per-class 8 --num-frames 64 --width 80 --height 64 \
  --seed 0

for model in SLOW_8x8_R18 SLOWFAST_8x8_R18; do
  echo "[demo] training and testing $model (log: $DEMO_DIR/$model/stdout.log)"
  "$PY" tools/run_net.py --cfg "configs/Synthetic/$model.yaml" \
    DATA.PATH_TO_DATA_DIR "$DATA" DATA.PATH_PREFIX "$DATA" \
    MODEL.NUM_CLASSES "$NUM_CLASSES" OUTPUT_DIR "$DEMO_DIR/$model" > "$DEMO_DIR/$model.console.log" 2>&1 \
    || { tail -n 40 "$DEMO_DIR/$model.console.log"; exit 1; }
done

"$PY" - "$DEMO_DIR" "$NUM_CLASSES" "$start" <<'PYEOF'
import json, sys, time
out, num_classes, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
chance = 100.0 / num_classes
print()
print(f"{'model':<20} {'val top-1':>10} {'test top-1':>11} {'views':>6} {'train time':>11}")
ok = True
for model in ("SLOW_8x8_R18", "SLOWFAST_8x8_R18"):
    with open(f"{out}/{model}/run_summary.json") as f:
        s = json.load(f)
    ok &= s["test_top1_acc"] >= 2 * chance
    print(f"{model:<20} {s['best_val_top1_acc']:>10.2f} {s['test_top1_acc']:>11.2f} "
          f"{s['test_views']:>6} {s['train_wall_time']:>11}")
print(f"chance: {chance:.2f}% ({num_classes} classes); whole demo: {time.time() - start:.0f} s")
if not ok:
    sys.exit("[demo] a model's test accuracy is not well above chance")
PYEOF
