#!/bin/sh
# trainer_table.sh: the results table of docs/trainer.md. Runs mlmem-train once
# per memory optimization and prints, next to the fp32 baseline, the peak
# memory by category (the trainer's own ground truth, --memory-report), the
# median step time and the test accuracy.
#
# usage: bench/trainer_table.sh [build-dir] [out-dir]   (from the repository root)
# env:   EPOCHS (5), THREADS (2), SEED (1337), EXTRA (more flags for every run),
#        TIMING_ROUNDS (3): after the full runs, every configuration is run
#        again this many times, round-robin, for 200 steps; the step time shown
#        is the median of those runs' medians (the full runs' own medians are
#        in their reports). Round-robin spreads the noise of a shared machine.
#        REUSE=1 keeps full runs already in out-dir (only re-times them).
#        MLMEM=path/to/mlmem: also run every configuration once (1 epoch on
#        25600 samples, --threads 1 so OpenBLAS adds no per-call heap churn)
#        under `mlmem run --json` and print a second table: the trainer's
#        ground truth next to what the profiler measured (its peak heap, and
#        its categories once attribution fills them).
set -eu
BUILD=${1:-build}
OUT=${2:-$(mktemp -d)}
EPOCHS=${EPOCHS:-5}; THREADS=${THREADS:-2}; SEED=${SEED:-1337}; EXTRA=${EXTRA:-}
TIMING_ROUNDS=${TIMING_ROUNDS:-3}
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
  if [ -n "${REUSE:-}" ] && [ -f "$OUT/run$i.json" ]; then continue; fi
  echo "[$i] $name: mlmem-train --epochs $EPOCHS --seed $SEED --threads $THREADS $flags $EXTRA" >&2
  # shellcheck disable=SC2086
  "$TRAIN" --epochs "$EPOCHS" --seed "$SEED" --threads "$THREADS" --log-every 0 $flags $EXTRA \
    --memory-report "$OUT/run$i.json" > "$OUT/run$i.log"
done < "$OUT/runs.txt"

for round in $(seq "$TIMING_ROUNDS"); do
  i=0
  while IFS='|' read -r name flags; do
    i=$((i + 1))
    echo "timing round $round, [$i] $name" >&2
    # shellcheck disable=SC2086
    "$TRAIN" --epochs 1 --limit-train 25600 --limit-test 1000 --seed "$SEED" --threads "$THREADS" \
      --log-every 0 $(echo "$flags" | sed 's/--save [^ ]*//') $EXTRA \
      --memory-report "$OUT/time$i.$round.json" > /dev/null
  done < "$OUT/runs.txt"
done

if [ -n "${MLMEM:-}" ]; then
  i=0
  while IFS='|' read -r name flags; do
    i=$((i + 1))
    echo "under mlmem, [$i] $name" >&2
    # shellcheck disable=SC2086
    "$MLMEM" run --no-trace -q --json "$OUT/prof$i.json" -- "$TRAIN" --epochs 1 --limit-train 25600 \
      --seed "$SEED" --threads 1 --log-every 0 $(echo "$flags" | sed 's/--save [^ ]*//') $EXTRA \
      --memory-report "$OUT/gt$i.json" > /dev/null
  done < "$OUT/runs.txt"
fi

${PYTHON:-/usr/bin/python3} - "$OUT" "$TIMING_ROUNDS" <<'PYEOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
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
    ms = r["steps"].get("median_ms", 0)
    if rounds > 0:
        ms = statistics.median(json.load(open(f"{out}/time{i}.{k}.json"))["steps"]["median_ms"]
                               for k in range(1, rounds + 1))
    print(f"| {name} | `{flags}` | {mb(pk['total_bytes'])} | "
          + " | ".join(mb(pk["bytes"][c]) for c in cats)
          + f" | {mb(r['end']['total_bytes'])} | {ms:.2f}"
          + f" | {100 * acc:.2f}%{note} | {delta:+.2f} |")

import os
if os.path.exists(f"{out}/prof1.json"):
    print()
    print("Under the profiler (1 epoch on 25600 samples, --threads 1): the trainer's")
    print("peak next to the profiler's peak heap (all malloc'd bytes of the process,")
    print("so it also holds libc's and OpenBLAS's) and its categories at its peak.")
    print()
    print("| run | trainer peak MB | mlmem peak heap MB | difference KB | mlmem categories |")
    print("|---|---:|---:|---:|---|")
    for i, (name, flags) in enumerate(runs, 1):
        g = json.load(open(f"{out}/gt{i}.json"))
        p = json.load(open(f"{out}/prof{i}.json"))
        t, h = g["peak"]["total_bytes"], p["summary"]["peak_heap_bytes"]
        cats_p = p.get("categories") or {}
        def cat_bytes(v):
            if isinstance(v, (int, float)):
                return v
            return next((v[k] for k in ("peak_bytes", "bytes_at_peak", "bytes") if k in v), 0)
        shown = ", ".join(f"{k} {mb(cat_bytes(v))}" for k, v in cats_p.items()) \
            or "(not attributed yet)"
        print(f"| {name} | {mb(t)} | {mb(h)} | {(h - t) / 1e3:.1f} | {shown} |")
PYEOF
echo "reports and logs: $OUT" >&2
