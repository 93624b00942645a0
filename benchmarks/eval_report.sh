#!/usr/bin/env bash
# The listener results table on one GPU, from nothing: the benchmark world (synthetic corpus + resamples, the
# oracle) -> diffusion brain + regression baseline -> brain.evaluate with the oracle, every baseline and
# ablation. Budget: ~10 minutes on one H100.
#
#   bash benchmarks/eval_report.sh <out_dir>
#   TRAIN_STEPS=2000 EVAL_CLIPS=10 bash benchmarks/eval_report.sh <out_dir>     # a quicker pass
#
# Knobs (environment variables, defaults in brackets):
#   CLIPS [300] CLIP_SECONDS [20] SEED [0]   the corpus (data_utils.synthetic_dyadic; 80/10/10 split); the
#                                         benchmark world needs clips of 20 s or longer (docs/RESULTS.md)
#   RESAMPLES [3]                         resamples of it (--resample_seed 1..R): the oracle's K samples
#   CONFIG [configs/brain_config.yaml]    brain preset for both models
#   TRAIN_STEPS [4000]                    diffusion training steps; REGRESSION_STEPS [TRAIN_STEPS]
#   SAMPLES [10]                          samples K per test clip
#   EVAL_CLIPS [0 = all]  EVAL_SECONDS [0 = whole clips]   test clips evaluated, each cut to EVAL_SECONDS
#   STEP_SWEEP ["5 10 25 50"] GUIDANCE_SWEEP ["2 3"]   ablations (15 steps is the main row)
#   PRECISION [fp32]                      diffusion sampling precision (bf16: faster, slightly different numbers)
#   WORK [${TMPDIR:-/tmp}/diff_listener_eval]   corpus and checkpoints (large; kept out of <out_dir>)
#   DEVICE [cuda]                         cpu: a smoke test of the script (with tiny sizes and CONFIG=configs/brain_tiny.yaml)
#
# Leaves in <out_dir>: eval/metrics.json, eval/metrics.md, eval/run.json, eval/*.png, the two runs'
# config.yaml + scalars.csv under runs/, and timings.txt (seconds per phase).
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: bash benchmarks/eval_report.sh <out_dir>" >&2
    exit 2
fi
out="$1"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
export PYTHONPATH="$repo_root${PYTHONPATH:+:$PYTHONPATH}"

CLIPS="${CLIPS:-300}"
CLIP_SECONDS="${CLIP_SECONDS:-20}"
RESAMPLES="${RESAMPLES:-3}"
SEED="${SEED:-0}"
CONFIG="${CONFIG:-configs/brain_config.yaml}"
TRAIN_STEPS="${TRAIN_STEPS:-4000}"
REGRESSION_STEPS="${REGRESSION_STEPS:-$TRAIN_STEPS}"
SAMPLES="${SAMPLES:-10}"
EVAL_CLIPS="${EVAL_CLIPS:-0}"
EVAL_SECONDS="${EVAL_SECONDS:-0}"
PRECISION="${PRECISION:-fp32}"
STEP_SWEEP="${STEP_SWEEP:-5 10 25 50}"
GUIDANCE_SWEEP="${GUIDANCE_SWEEP:-2 3}"
WORK="${WORK:-${TMPDIR:-/tmp}/diff_listener_eval}"
DEVICE="${DEVICE:-cuda}"
cuda_graphs=""
if [[ "$DEVICE" == cuda ]]; then
    cuda_graphs="--cuda_graphs"
fi

corpus="$WORK/corpus_${CLIPS}x${CLIP_SECONDS}s_seed${SEED}"
mkdir -p "$out/runs" "$WORK"
timings="$out/timings.txt"
: > "$timings"

phase() {  # phase <name> <command...>: run it, append its wall time to timings.txt
    local name="$1"
    shift
    local start=$SECONDS
    echo "== $name" >&2
    "$@"
    echo "$name $((SECONDS - start)) s" | tee -a "$timings" >&2
}

resamples=()
for resample_seed in $(seq 0 "$RESAMPLES"); do  # 0 is the corpus itself, 1..R its resamples (the oracle)
    folder="$corpus"
    if [[ "$resample_seed" -gt 0 ]]; then
        folder="${corpus}_resample${resample_seed}"
        resamples+=("$folder")
    fi
    # Always written (seconds): a corpus left by an older generator must not stand in for this world.
    phase "corpus_resample$resample_seed" python -m data_utils.synthetic_dyadic --out "$folder" --clips "$CLIPS" \
        --seconds "$CLIP_SECONDS" --seed "$SEED" --resample_seed "$resample_seed"
done
oracle_args=()
if [[ ${#resamples[@]} -gt 0 ]]; then
    oracle_args=(--oracle "${resamples[@]}")
fi
phase train_diffusion python train_diffusion.py --config "$CONFIG" --data "$corpus" --out "$WORK/diffusion" \
    --resume "train.max_steps=$TRAIN_STEPS"
phase train_regression python train_diffusion.py --config "$CONFIG" --data "$corpus" --out "$WORK/regression" \
    --resume model.objective=regression "train.max_steps=$REGRESSION_STEPS"
for run in diffusion regression; do
    mkdir -p "$out/runs/$run"
    cp "$WORK/$run/config.yaml" "$WORK/$run/scalars.csv" "$out/runs/$run/"
done

# shellcheck disable=SC2086  # the sweeps are space-separated lists on purpose
phase evaluate python -m brain.evaluate --data "$corpus" --split test \
    --checkpoint "$WORK/diffusion/checkpoint.pth" --regression_checkpoint "$WORK/regression/checkpoint.pth" \
    --samples "$SAMPLES" --baselines all --steps 15 --seed "$SEED" --out "$out/eval" \
    --device "$DEVICE" --precision "$PRECISION" $cuda_graphs \
    --max_clips "$EVAL_CLIPS" --max_seconds "$EVAL_SECONDS" \
    --shuffled_speaker --audio_only --speaker_exp_only --step_sweep $STEP_SWEEP --guidance_sweep $GUIDANCE_SWEEP \
    ${oracle_args[@]+"${oracle_args[@]}"}

echo "results: $out/eval/metrics.md; timings: $timings" >&2
cat "$timings" >&2
