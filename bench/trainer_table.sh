#!/bin/sh
# trainer_table.sh: the results table of docs/trainer.md. Runs mlmem-train once
# per memory optimization and prints, next to the fp32 baseline, the peak
# memory by category (the trainer's own ground truth, --memory-report), the
# median step time and the test accuracy.
#
# usage: bench/trainer_table.sh [build-dir] [out-dir]   (from the repository root)
# env:   EPOCHS (5), THREADS (2), SEED (1337), EXTRA (more flags for every run)
set -eu
BUILD=${1:-build}
OUT=${2:-$(mktemp -d)}
EPOCHS=${EPOCHS:-5}; THREADS=${THREADS:-2}; SEED=${SEED:-1337}; EXTRA=${EXTRA:-}
TRAIN="$BUILD/bin/mlmem-train"
[ -x "$TRAIN" ] || { echo "no $TRAIN: build first" >&2; exit 1; }
mkdir -p "$OUT"
export OPENBLAS_NUM_THREADS=$THREADS

# name|flags   (runs in order; 'teacher' saves the checkpoint 'distill' uses)
cat > "$OUT/runs.txt" <<RUNS
baseline|
layout per-tensor|--layout per-tensor
act bf16|--precision bf16
act fp16 + loss scaling|--precision fp16
bf16 act+weights+grads+opt|--precision bf16 --weight-dtype bf16 --grad-dtype bf16 --opt-dtype bf16
micro-batch 32 x 4|--micro-batch 32
data stream (1024)|--data stream --prefetch 1024
optimizer sgd|--optimizer sgd
optimizer momentum|--optimizer momentum
adamw bf16 state|--opt-dtype bf16
prune 50% + 1 ft epoch|--prune 0.5 --finetune-epochs 1
int8 weights|--quantize int8
teacher (saved)|--save $OUT/teacher.ckpt
distill width 256|--width 256 --teacher $OUT/teacher.ckpt
no distill width 256|--width 256
deep baseline (8x512)|--depth 8
deep ckpt sqrt|--depth 8 --checkpointing sqrt
deep ckpt every 1|--depth 8 --checkpointing 1
deep ckpt sqrt per-tensor|--depth 8 --checkpointing sqrt --layout per-tensor
RUNS

i=0
while IFS='|' read -r name flags; do
  i=$((i + 1))
  echo "[$i] $name: mlmem-train --epochs $EPOCHS --seed $SEED --threads $THREADS $flags $EXTRA" >&2
  # shellcheck disable=SC2086
  "$TRAIN" --epochs "$EPOCHS" --seed "$SEED" --threads "$THREADS" --log-every 0 $flags $EXTRA \
    --memory-report "$OUT/run$i.json" > "$OUT/run$i.log"
done < "$OUT/runs.txt"

${PYTHON:-/usr/bin/python3} - "$OUT" <<'PYEOF'
import json, sys
out = sys.argv[1]
runs = [l.rstrip("\n").split("|", 1) for l in open(f"{out}/runs.txt") if l.strip()]
cats = ["weights", "gradients", "optimizer_state", "activations", "data", "temporaries", "other"]
short = ["weights", "grads", "opt", "acts", "data", "temps", "other"]
mb = lambda b: f"{b / 1e6:.3f}"
print("| run | flags | peak MB | " + " | ".join(short) + " | end MB | step ms | test acc | vs base |")
print("|---|---|---:|" + "---:|" * len(cats) + "---:|---:|---:|---:|")
base = {}
for i, (name, flags) in enumerate(runs, 1):
    r = json.load(open(f"{out}/run{i}.json"))
    pk, acc = r["peak"], r["final"]["test_accuracy"]
    comp = r.get("compression", {})
    note = ""
    if "prune" in comp:
        acc = comp["prune"]["accuracy_sparse_model"]
        note = f" (sparse weights {mb(comp['prune']['sparse_weight_bytes'])} MB vs {mb(comp['prune']['dense_weight_bytes'])})"
    if "int8" in comp:
        acc = comp["int8"]["accuracy_int8"]
        note = f" (int8 weights {mb(comp['int8']['int8_weight_bytes'])} MB vs {mb(comp['int8']['dense_weight_bytes'])})"
    if "distill" in comp:
        note = f" (teacher {100 * comp['distill']['teacher_accuracy']:.2f}%)"
    key = "deep" if "--depth 8" in flags else "base"
    if name.startswith(("baseline", "deep baseline")):
        base[key] = acc
    delta = 100 * (acc - base.get(key, acc))
    flags = flags.replace(out + "/", "")
    print(f"| {name} | `{flags}` | {mb(pk['total_bytes'])} | "
          + " | ".join(mb(pk["bytes"][c]) for c in cats)
          + f" | {mb(r['end']['total_bytes'])} | {r['steps'].get('median_ms', 0):.2f}"
          + f" | {100 * acc:.2f}%{note} | {delta:+.2f} |")
PYEOF
echo "reports and logs: $OUT" >&2
