#!/usr/bin/env bash
# A CPU probe of brain config changes against the oracle: brain_tiny trained once per variant on a small
# benchmark world with 3 resamples, each scored on the test clips with the shuffled-speaker control. Too small
# to stand for the shipped preset (at 1,500 steps the tiny model barely listens); it says which way a change
# pushes diversity before a GPU session spends its minutes on it.
#
#   WORK=/tmp/brain_variants bash benchmarks/brain_variants_cpu.sh "pm-1.2:diffusion.p_mean=-1.2" "pm0:diffusion.p_mean=0"
#
# Each argument is <name>:<key=value>[,<key=value>...] (configs/brain_tiny.yaml overrides; <name>: alone is the
# config as it is; a list value keeps its commas: model.memory_seconds=[2,6,20]). Knobs: CLIPS [60] CLIP_SECONDS [20] (seed 0: 48 train / 6 val / 6 test), STEPS [1500],
# SAMPLES [5]. The variants train side by side, one core each (4–5 min at 1,500 steps on the 2-core development
# machine, ~1 min for the evaluation). Prints each variant's ratio-to-oracle row and its FRDiv by tempo band
# (benchmarks/diversity_breakdown.py, whole table in $WORK/breakdown_<name>.md); everything stays in $WORK.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/stage_lib.sh
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
python="${PYTHON:-python3}"
WORK="${WORK:-/tmp/diff_listener_brain_variants}"
[ "$#" -gt 0 ] || { echo "give at least one <name>:<key=value,...> variant" >&2; exit 2; }
mkdir -p "$WORK"
write_world "$python" "$WORK/world" "${CLIPS:-60}" "${CLIP_SECONDS:-20}" "$WORK"/resample{1,2,3}
pids=()
for variant in "$@"; do
    name="${variant%%:*}"
    # split on the commas outside [...]: "a=1,model.memory_seconds=[2,6,20]" is two overrides
    read -r -a overrides <<< "$($python -c 'import re, sys; print(" ".join(re.split(r",(?![^\[]*\])", sys.argv[1])))' "${variant#*:}")"
    (
        [ -f "$WORK/run_$name/checkpoint.pth" ] || $python train_diffusion.py --config configs/brain_tiny.yaml \
            --data "$WORK/world" --out "$WORK/run_$name" "${overrides[@]}" "train.max_steps=${STEPS:-1500}" \
            train.device=cpu train.val_every=500 > "$WORK/train_$name.log" 2>&1
        $python -m brain.evaluate --data "$WORK/world" --split test --checkpoint "$WORK/run_$name/checkpoint.pth" \
            --oracle "$WORK/resample1" "$WORK/resample2" "$WORK/resample3" --baselines mean --shuffled_speaker \
            --samples "${SAMPLES:-5}" --device cpu --save_samples --out "$WORK/eval_$name" > "$WORK/eval_$name.log" 2>&1
        $python benchmarks/diversity_breakdown.py --data "$WORK/world" --split test \
            --saved_samples "$WORK/eval_$name/samples" --json "$WORK/eval_$name/breakdown.json" \
            --plot "$WORK/eval_$name/breakdown.png" > "$WORK/breakdown_$name.md"
    ) &
    pids+=($!)
done
wait "${pids[@]}"
for variant in "$@"; do
    name="${variant%%:*}"
    echo "=== $name (${variant#*:}): ratio to the oracle, test clips"
    awk '/^## Ratio to the oracle/ {on = 1; next} /^## / {on = 0}
         on && (/^\| method/ || /^\|---/ || /^\| diffusion/ || /^\| mean/)' "$WORK/eval_$name/metrics.md"
    grep -E '^\| (cell|all/)' "$WORK/breakdown_$name.md"  # FRDiv / oracle and bias² / V by tempo band
done
