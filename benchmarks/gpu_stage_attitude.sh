#!/usr/bin/env bash
# GPU stage of the reaction controls (issue #12): the shipped preset's attitude and intensity control on the labelled
# benchmark world, with the oracle, in one brain.evaluate run — everything docs/RESULTS.md's attitude section needs.
#
#   CORPUS=<benchmark world> CHECKPOINT=<brain_config.yaml run on it>/checkpoint.pth \
#   RESAMPLES="<resample_1> <resample_2> <resample_3>" OUT_DIR=<dir> bash benchmarks/gpu_stage_attitude.sh
#
# Knobs (environment, defaults in brackets): SAMPLES [10] per clip; SWEEP_SAMPLES [2] per clip and swept value;
# EVAL_CLIPS [0: all test clips]; EVAL_SECONDS [0: whole clips]; DEVICE [cuda]; WORKERS [8] scoring processes;
# BATCH_WINDOWS [512] windows denoised together (clips x samples; brain.evaluate --batch_windows); SAMPLING [empty:
# the checkpoint's] sampling options of every diffusion row (brain.evaluate --sampling, e.g. guidance_history=2);
# SPLIT [test] (val: the same evaluation on the validation clips, into attitude_eval_val, to choose a setting by).
# Expected on one H100/H200 with the benchmark world (30 test clips x 20 s): ~10-15 GPU minutes — 4 diffusion rows
# (unconditional + one per attitude) x K=10, an intensity sweep of 5 values and an attitude-guidance sweep of 4 at
# K=2, and the CPU scoring (per attitude too).
#
# Prints (and leaves in $OUT_DIR/attitude_eval/metrics.md): the main tables with diffusion (each clip's own attitude),
# diffusion[shuffled], diffusion[attitude=<name>], diffusion[no_attitude], oracle, oracle[shuffled], mean and nearest
# rows and their ratios to the oracle; then "Attitude
# control": the classifier's accuracy on ground-truth test windows and on samples of each requested attitude (the
# ratio, target >= 0.9), both confusion matrices, FD exp of diffusion[attitude=a] over the oracle's on a's clips
# (target <= 1.3), realism per attitude, and the intensity and attitude-guidance sweeps (energy ratio, FD exp,
# accuracy, monotonic). Plots: attitude_confusion.png, intensity_sweep.png, guidance_attitude_sweep.png.
# CPU smoke test: DEVICE=cpu SAMPLES=1 SWEEP_SAMPLES=1 EVAL_CLIPS=3 EVAL_SECONDS=4 with a brain_tiny checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/stage_lib.sh
: "${CORPUS:?set CORPUS to the labelled benchmark world}" "${CHECKPOINT:?set CHECKPOINT}" "${OUT_DIR:?set OUT_DIR}"
: "${RESAMPLES:?set RESAMPLES to the resamples of the world (space-separated), the oracle}"
DEVICE="${DEVICE:-cuda}"
options=()
[ "$DEVICE" = cuda ] && options=(--precision bf16 --cuda_graphs --batch_windows "${BATCH_WINDOWS:-512}")
[ -n "${SAMPLING:-}" ] && options+=(--sampling "$SAMPLING")
mkdir -p "$OUT_DIR"
# shellcheck disable=SC2086  # RESAMPLES is a list of folders
split="${SPLIT:-test}"
name="attitude_eval$([ "$split" = test ] || echo "_$split")"
"${PYTHON:-python3}" -m brain.evaluate --data "$CORPUS" --split "$split" --checkpoint "$CHECKPOINT" --oracle $RESAMPLES \
    --baselines mean,nearest --shuffled_speaker --samples "${SAMPLES:-10}" --max_clips "${EVAL_CLIPS:-0}" --max_seconds "${EVAL_SECONDS:-0}" \
    --attitudes --intensity_sweep 0.5 0.7 1 1.4 2 --attitude_guidance_sweep 0 1 2 3 \
    --sweep_samples "${SWEEP_SAMPLES:-2}" --workers "${WORKERS:-8}" --device "$DEVICE" ${options[@]+"${options[@]}"} \
    --out "$OUT_DIR/$name" 2>&1 | tee "$OUT_DIR/$name.log"
