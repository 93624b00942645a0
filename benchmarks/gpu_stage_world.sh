#!/usr/bin/env bash
# GPU stage of the benchmark world and its oracle (issue #9 §1-2): the world's checks, then the eval report on
# the benchmark world (300 clips x 20 s, 3 resamples) with the oracle rows and every ratio to the oracle.
# Expected: ~15 GPU minutes on one H100/H200 (two 4,000-step brain_config.yaml trainings, then brain.evaluate on
# 30 test clips x K=10 with every baseline, ablation and sweep) plus ~3 CPU minutes for check_world.py.
#
#   WORK=/tmp/world OUT_DIR=/tmp/world_out bash benchmarks/gpu_stage_world.sh
#   CHECK_CLIPS=40 DEVICE=cpu CONFIG=configs/brain_tiny.yaml CLIPS=20 TRAIN_STEPS=20 SAMPLES=2 EVAL_CLIPS=2 \
#       STEP_SWEEP=5 GUIDANCE_SWEEP=2 bash benchmarks/gpu_stage_world.sh        # a CPU smoke test of this file
#
# Prints check_world's table (oracle vs baselines, shuffled-speaker P-FD, oracle diversity) and leaves it in
# $OUT_DIR/check_world.txt; the eval report (metrics.md with the "Ratio to the oracle" table, metrics.json with
# [method]["ratio_to_oracle"], plots, timings) in $OUT_DIR/eval_report/. Every other eval_report.sh knob
# (TRAIN_STEPS, SAMPLES, ...) passes through.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ! command -v python >/dev/null; then  # eval_report.sh calls python; some images ship only python3
    mkdir -p /tmp/python_shim && ln -sf "$(command -v python3)" /tmp/python_shim/python
    export PATH="/tmp/python_shim:$PATH"
fi
WORK="${WORK:-/tmp/diff_listener_world}"
OUT_DIR="${OUT_DIR:-$WORK/out}"
mkdir -p "$OUT_DIR"

python3 benchmarks/check_world.py --clips "${CHECK_CLIPS:-200}" --work "$WORK/check" | tee "$OUT_DIR/check_world.txt" \
    || echo "check_world: a check failed (see the table above)" >&2
WORK="$WORK/eval" bash benchmarks/eval_report.sh "$OUT_DIR/eval_report"
