#!/bin/sh
# trainer_vs_torch.sh: step time of mlmem-train next to PyTorch on CPU
# (Debian's python3-torch) on the same model, batch, optimizer and data,
# plus the machine's measured sgemm throughput and the fraction of it the
# trainer's step reaches.
#
# usage: bench/trainer_vs_torch.sh [build-dir]      (from the repository root)
# env:   STEPS (200), BATCH (128), WIDTH (512), DEPTH (2), THREADS (2),
#        OPTIMIZER (adamw), ROUNDS (3: each side runs ROUNDS times, alternating;
#        the median of the per-run medians is reported)
set -eu
BUILD=${1:-build}
STEPS=${STEPS:-200}; BATCH=${BATCH:-128}; WIDTH=${WIDTH:-512}; DEPTH=${DEPTH:-2}
THREADS=${THREADS:-2}; OPTIMIZER=${OPTIMIZER:-adamw}; ROUNDS=${ROUNDS:-3}
PY=${PYTHON:-/usr/bin/python3}
TRAIN="$BUILD/bin/mlmem-train"
[ -x "$TRAIN" ] || { echo "no $TRAIN: build first (cmake --build $BUILD)" >&2; exit 1; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
export OPENBLAS_NUM_THREADS=$THREADS

cc -O2 bench/trainer_sgemm_probe.c $(pkg-config --cflags --libs openblas) -o "$TMP/probe"
"$TMP/probe" "$BATCH" "$WIDTH" "$DEPTH" > "$TMP/probe.txt"
PEAK=$(awk '/sgemm_peak_gflops/ {print $2}' "$TMP/probe.txt")
SHAPES=$(awk '/step_shapes_gflops/ {print $2}' "$TMP/probe.txt")
FLOPS=$(awk '/step_flops/ {print $2}' "$TMP/probe.txt")

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: > "$TMP/c.txt"; : > "$TMP/t.txt"
for r in $(seq "$ROUNDS"); do
  "$TRAIN" --epochs 1 --limit-train $((STEPS * BATCH)) --limit-test "$BATCH" --batch "$BATCH" \
    --width "$WIDTH" --depth "$DEPTH" --optimizer "$OPTIMIZER" --threads "$THREADS" \
    --lr-schedule constant --log-every 0 --memory-report "$TMP/r.json" > /dev/null
  $PY -c "import json; print(json.load(open('$TMP/r.json'))['steps']['median_ms'])" >> "$TMP/c.txt"
  $PY bench/torch_mlp.py --steps "$STEPS" --batch "$BATCH" --width "$WIDTH" --depth "$DEPTH" \
    --threads "$THREADS" --optimizer "$OPTIMIZER" > "$TMP/torch.txt"
  awk '/median_ms/ {print $2}' "$TMP/torch.txt" >> "$TMP/t.txt"
done
C_MS=$(median < "$TMP/c.txt"); T_MS=$(median < "$TMP/t.txt")
TV=$(awk '/torch_version/ {print $2}' "$TMP/torch.txt")

DIMS=784; for _ in $(seq "$DEPTH"); do DIMS="$DIMS-$WIDTH"; done
echo "model $DIMS-10, batch $BATCH, $OPTIMIZER, $THREADS threads, $STEPS steps x $ROUNDS runs"
echo "cpu: $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//'), $(nproc) cores"
printf '%-22s %12s %14s %16s\n' "" "step (ms)" "GFLOP/s" "of sgemm peak"
$PY - "$C_MS" "$T_MS" "$FLOPS" "$PEAK" "$SHAPES" "$TV" <<'PYEOF'
import sys
c, t, flops, peak, shapes, tv = sys.argv[1:]
c, t, flops, peak, shapes = map(float, (c, t, flops, peak, shapes))
for name, ms in (("mlmem-train", c), ("pytorch " + tv, t)):
    g = flops / (ms / 1e3) / 1e9
    print(f"{name:<22} {ms:12.3f} {g:14.2f} {100 * g / peak:15.1f}%")
print(f"{'sgemm peak (2048^3)':<22} {'':>12} {peak:14.2f} {100.0:15.1f}%")
print(f"{'sgemm, step shapes':<22} {'':>12} {shapes:14.2f} {100 * shapes / peak:15.1f}%")
print(f"mlmem-train / pytorch step time: {c / t:.3f}")
PYEOF
echo "per-run medians (ms): mlmem-train $(tr '\n' ' ' < "$TMP/c.txt")| pytorch $(tr '\n' ' ' < "$TMP/t.txt")"
