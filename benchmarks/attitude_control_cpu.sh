#!/usr/bin/env bash
# The CPU measurement behind docs/BRAIN.md's choice of the intensity knob: on the labelled synthetic world, one
# brain_tiny model per intensity span (model.intensity_frames), each evaluated with brain.evaluate --attitudes
# sweeping both candidate knobs — the intensity condition and the attitude guidance scale — on the same model.
#
#   WORK=/tmp/attitude_cpu bash benchmarks/attitude_control_cpu.sh
#   CLIPS=12 CLIP_SECONDS=8 STEPS=20 SPANS=100 bash benchmarks/attitude_control_cpu.sh      # a smoke test of this file
#
# Knobs (defaults in brackets): CLIPS [60] CLIP_SECONDS [20] (seed 0: 48 train / 6 test clips), STEPS [1500],
# SPANS ["100 25"]. About 25 minutes per span on one free core (training ~15, evaluation ~10). Prints the
# "Attitude control" part of each span's metrics.md; everything is left in $WORK/eval_span<N>/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
WORK="${WORK:-/tmp/diff_listener_attitude_cpu}"
mkdir -p "$WORK"
[ -f "$WORK/corpus/meta.json" ] || python3 -m data_utils.synthetic_dyadic --out "$WORK/corpus" \
    --clips "${CLIPS:-60}" --seconds "${CLIP_SECONDS:-20}" --seed 0
for span in ${SPANS:-100 25}; do
    run="$WORK/run_span$span"
    [ -f "$run/checkpoint.pth" ] || python3 train_diffusion.py --config configs/brain_tiny.yaml --data "$WORK/corpus" \
        --out "$run" "model.intensity_frames=$span" "train.max_steps=${STEPS:-1500}" train.device=cpu train.val_every=500
    python3 -m brain.evaluate --data "$WORK/corpus" --checkpoint "$run/checkpoint.pth" --baselines mean --samples 2 \
        --attitudes --intensity_sweep 0.5 0.7 1 1.4 2 --attitude_guidance_sweep 0 1 2 3 --sweep_samples 2 \
        --device cpu --out "$WORK/eval_span$span" > "$WORK/eval_span$span.log"
    echo "=== intensity span $span frames"
    sed -n '/^## Attitude control/,$p' "$WORK/eval_span$span/metrics.md"
done
