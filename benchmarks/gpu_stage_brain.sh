#!/usr/bin/env bash
# The brain's GPU measurements (issues: calibration against the oracle, attitude control, chunk speed), in
# phases so a lent machine's short calls can run them (benchmarks/gpu_session.sh calls these):
#
#   bash benchmarks/gpu_stage_brain.sh speed     # chunk latency of the shipped architecture (random weights)
#   bash benchmarks/gpu_stage_brain.sh start     # benchmark world + 3 resamples; the trainings start in the background
#   bash benchmarks/gpu_stage_brain.sh wait      # until they are done (or WAIT_SECONDS have passed)
#   bash benchmarks/gpu_stage_brain.sh score     # waits for them; every variant against the oracle on validation
#   bash benchmarks/gpu_stage_brain.sh finish    # score, then `preset`
#   bash benchmarks/gpu_stage_brain.sh curve     # the learning curve: every step copy the trainings keep (KEEP_EVERY)
#                                                # scored on validation as it appears (WAIT_SECONDS caps the wait);
#                                                # learning_curve.md: one row per variant and step
#   bash benchmarks/gpu_stage_brain.sh calibrate # the (first) variant's checkpoint on validation with the sampling
#                                                # rows of CAL_SWEEP beside its preset row; the rule below picks the
#                                                # sampling (chosen_sampling: a --sweep entry, or empty for the
#                                                # checkpoint's own), which `preset` then reports on the test clips
#   bash benchmarks/gpu_stage_brain.sh energy    # the (first) variant fine-tuned on its own rollouts with the
#                                                # energy score of their slow course (rollout_energy_probe.py:
#                                                # ENERGY_STEPS [300], ENERGY_WEIGHT [5], ENERGY_SEAM_WEIGHT [0.3],
#                                                # ENERGY_SECONDS [12]: the CPU probe's best row), then
#                                                # it and the tuned copy on validation with CAL_SWEEP's rows
#   bash benchmarks/gpu_stage_brain.sh preset    # the shipped preset's attitude control (gpu_stage_attitude.sh)
#                                                # and diversity-fidelity grid (NO_GRID=1 skips it); slim checkpoint
#
# Environment: WORK (scratch, default /tmp/diff_listener_gpu), OUT_DIR (results), STEPS [12000] and
# MINUTES [9] (each training's step budget and wall-clock cap: a run still going then is killed and its last
# checkpoint — written every 500 steps — is the result; KEEP_EVERY [0: none] keeps a slim copy every that many
# steps, train.keep_every, for `curve`;
# `score` names each variant's checkpoint step and warns when they differ), CLIPS [300] SECONDS_PER_CLIP [20],
# SAMPLES [5], ATTITUDE_SAMPLES [SAMPLES] (the test report's), SWEEP_SAMPLES [1] (the attitude sweeps' samples per clip),
# ATTITUDE_WORKERS [WORKERS] (its scoring processes), WORKERS [4] (scoring processes per
# evaluation), GRID_CLIPS [0: all] (test clips of the diversity-fidelity grid), BATCH_WINDOWS [512] (windows
# denoised together by the evaluations: clips x samples; 1 samples one clip at a time, the way every evaluation
# ran until 2026-12-02's fourth session, when one diffusion row of 30 clips x 20 s at K=5 took ~40 s on an H200
# alone and 122 s with four evaluations side by side), OLD_CODE (a checkout of the brain before the
# sampler change, e.g. `git archive dbc6ea1 brain utils configs train_diffusion.py data_utils`; its variant
# is skipped when unset), TINY=1 (a CPU smoke run of every step at toy sizes).
#
# The variants (all configs/brain_config.yaml on the same world), VARIANTS [shipped noown]:
#   shipped     the preset as it is (since 2026-12-02 with own history: a quarter of the windows, made every
#               4th step, targets eased back over 8 frames)
#   noown       diffusion.own_history=0: the preset before that, no scheduled sampling
#   own25       own history in its first form: every step, no easing
#   own25x4     the preset's own history without the target easing (own_history_ease_frames=0)
#   own50       the same with half of the windows
#   ctx25       model.speaker_context_frames=25: the speaker seen only as far back as the listener history
#   ctx200      model.speaker_context_frames=200: 8 s of the speaker, the world's rapport time constant
#   hist100     model.history_frames=100: 4 s of the listener's own past (and of the speaker)
#   noint       model.intensity_frames=0: no intensity condition
#   x0weight    diffusion.loss_weighting=x0 (plain x0 L2 instead of EDM's 1/c_out² weighting)
#   pmean0      diffusion.p_mean=0: training noise levels centred on σ = 1 instead of 0.3 (brain_tiny's choice),
#               more of the training where a reaction is chosen; the sampler grid put the diversity shortfall in
#               the network, not in the sampler (docs/RESULTS.md, fifth session); on CPU at tiny scale it
#               halved FRDiv (benchmarks/brain_variants_cpu.sh), so this is the check at full scale
#   pmeanlow    diffusion.p_mean=-2: the other way, more of the training on small σ (the tiny probe's direction
#               for FRDiv: 0.20 at p_mean 0, 0.44 at -1.2)
#   hnoise0     diffusion.history_noise=0: the history condition seen clean, as it is when sampling
#   wide        model.width=384 (heads 8 of 48): 2.2x the parameters at the same depth, so the same kernel
#               launches per chunk; the guided sampler at guidance 1 keeps only 0.63 of the amplitude
#               (fifth session), the mark of a denoiser that predicts too smooth an x0
#   memory      model.memory_seconds=[2,6,20]: long memory (brain/memory.py), moving averages of the listener's own
#               past and of the speaker's expression over 2, 6 and 20 s, six tokens; on the tiny CPU probe it
#               lowered FD and the slow band's bias, and with history guidance 1.5 it reached the oracle's slow
#               diversity without the bias history guidance adds to the preset (docs/RESULTS.md); the preset
#               itself since the ninth session (then the same as shipped)
#   nomemory    model.memory_seconds=[]: the preset before long memory, the control
#   old         OLD_CODE's preset: discrete cosine schedule T=50 and DDIM (the control the issue measured)
# `finish` scores every variant against the oracle on the *validation* clips (its preset row, and the sampling
# rows of VAL_SWEEP [guidance=4 steps=10]; saved samples split by benchmarks/diversity_breakdown.py), picks the
# one closest to calibrated there (brain.oracle.calibration_miss of the preset row: the log distance outside
# the issue's FD, P-FD, FRDiv, SID and amplitude targets, summed; it was the FD exp ratio alone until the sixth
# session) among those whose chunk seams are within 5% of the oracle's (any, if none is:
# benchmarks/closest_calibrated.py, which `calibrate` applies to sampling rows too),
# and reports that one on the test clips (with the shuffled-speaker control):
# the attitude evaluation (its main table: diffusion, shuffled speaker, oracle rows) and, unless NO_GRID=1, the
# diversity-fidelity grid. Choosing on validation keeps the reported test figures out of the choice.
set -uo pipefail
cd "$(dirname "$0")/.."
source benchmarks/stage_lib.sh
work="${WORK:-/tmp/diff_listener_gpu}/brain"
out="${OUT_DIR:-$work/out}"
mkdir -p "$work" "$out"
python="${PYTHON:-python3}"
steps="${STEPS:-12000}"; minutes="${MINUTES:-9}"; clips="${CLIPS:-300}"; seconds="${SECONDS_PER_CLIP:-20}"
samples="${SAMPLES:-5}"; workers="${WORKERS:-4}"; device=cuda
eval_extra=(--precision bf16 --cuda_graphs --batch_windows "${BATCH_WINDOWS:-512}")
# Sampling candidates scored beside each variant's preset row on validation (the fifth session's test grid
# found guidance 4 the one setting inside the amplitude and SID targets, and 10 evaluations as good as 15).
read -r -a val_sweep <<< "${VAL_SWEEP:-guidance=4 steps=10}"
# History guidance (brain/diffusion.py) around the preset's own sampling (guidance 5, attitude guidance 2, history
# guidance 2 since the ninth session, with long memory): on validation history guidance 1.2 -> 2 -> 3 took FRDiv
# 0.58 -> 0.67 -> 0.87 of the oracle's at FD 1.35 -> 1.34 -> 1.49 x, the seams rising past 2.5 (docs/RESULTS.md).
read -r -a cal_sweep <<< "${CAL_SWEEP:-guidance_history=1.5 guidance_history=2.5 guidance_history=3 guidance=4 guidance=6}"
sweep_samples="${SWEEP_SAMPLES:-1}"; eval_clips=0; eval_seconds=0; grid_clips="${GRID_CLIPS:-0}"
train_extra=()
if [ -n "${TINY:-}" ]; then  # CPU smoke run: every command once, at toy sizes
    steps=6; minutes=2; clips=20; seconds=6; samples=2; workers=2; device=cpu; eval_extra=(--max_clips 2)
    sweep_samples=1; eval_clips=2; eval_seconds=4; grid_clips=2
    train_extra=(model.width=32 model.layers=1 model.heads=4 train.batch_size=8 train.val_every=3
                 train.checkpoint_every=3 train.log_every=1 train.val_windows=8 train.warmup_steps=1)
fi
world="$work/world"
resamples=("$work/resample1" "$work/resample2" "$work/resample3")
read -r -a variants <<< "${VARIANTS:-shipped noown}"

stamp() { echo "[$(date +%H:%M:%S)] $*"; }

checkpoint_step() {  # checkpoint_step <name>: the training step of the weights eval_<name> scored
    $python -c 'import json, sys; print(json.load(open(sys.argv[1])).get("checkpoint_step"))' "$work/eval_$1/run.json"
}

chosen_variant() {  # the variant `finish` chose (shipped before it ran)
    cat "$work/chosen_variant" 2>/dev/null || echo shipped
}

chosen_sampling() {  # the sampling options `calibrate` chose (empty: the checkpoint's own)
    cat "$work/chosen_sampling" 2>/dev/null || true
}

sampling_value() {  # sampling_value <key> <default>: the key's value in the chosen sampling options, else the default
    local value
    value="$(chosen_sampling | tr ',' '\n' | sed -n "s/^$1=//p")"
    echo "${value:-$2}"
}

phase_speed() {  # the chosen variant's trained weights when they exist, else random weights of the preset; sampled
    # as `calibrate` chose (its guidance and history guidance); SPEED_ROWS=live: only the live session's mode
    local model=() chosen rows=()
    chosen="$(chosen_variant)"
    [ -f "$work/$chosen/checkpoint.pth" ] && model=(--checkpoint "$work/$chosen/checkpoint.pth")
    [ "${SPEED_ROWS:-}" = live ] && rows=(--live_mode_only)
    # What the chosen sampling does not set stays the checkpoint's own; an attitude is asked as the live session does.
    [ -n "$(sampling_value guidance '')" ] && model+=(--guidance "$(sampling_value guidance '')")
    [ -n "$(sampling_value guidance_history '')" ] && model+=(--guidance_history "$(sampling_value guidance_history '')")
    [ -n "$(sampling_value guidance_attitude '')" ] && model+=(--guidance_attitude "$(sampling_value guidance_attitude '')")
    [ -f "$work/$chosen/checkpoint.pth" ] && model+=(--attitude positive)
    stamp "chunk latency (${model[*]:-random weights of configs/brain_config.yaml}${rows[*]:+ ${rows[*]}})"
    if [ -n "${TINY:-}" ]; then
        $python benchmarks/bench_brain.py --device cpu --runs 2 --offline_seconds 1 --no_compile "${model[@]}" 2>&1 | tee "$out/bench_brain.txt"
    else
        $python benchmarks/bench_brain.py --runs 100 "${model[@]}" "${rows[@]}" 2>&1 | tee "$out/bench_brain.txt"
    fi
}

write_training_script() {  # write_training_script <name>: the variant's training as a script of its own
    local name="$1" root="$PWD" overrides=()
    case "$name" in
        noown) overrides=(diffusion.own_history=0) ;;
        own25) overrides=(diffusion.own_history=0.25 diffusion.own_history_every=1 diffusion.own_history_ease_frames=0) ;;
        own25x4) overrides=(diffusion.own_history=0.25 diffusion.own_history_every=4 diffusion.own_history_ease_frames=0) ;;
        own50) overrides=(diffusion.own_history=0.5 diffusion.own_history_every=1 diffusion.own_history_ease_frames=0) ;;
        ctx25) overrides=(model.speaker_context_frames=25) ;;
        ctx200) overrides=(model.speaker_context_frames=200) ;;
        hist100) overrides=(model.history_frames=100) ;;
        noint) overrides=(model.intensity_frames=0) ;;
        x0weight) overrides=(diffusion.loss_weighting=x0) ;;
        pmean0) overrides=(diffusion.p_mean=0) ;;
        pmeanlow) overrides=(diffusion.p_mean=-2) ;;
        hnoise0) overrides=(diffusion.history_noise=0) ;;
        wide) overrides=(model.width=384) ;;
        memory) overrides=("'model.memory_seconds=[2,6,20]'") ;;
        nomemory) overrides=("'model.memory_seconds=[]'") ;;
        old) root="${OLD_CODE:?the old variant needs OLD_CODE}" ;;
    esac
    cat > "$work/train_$name.sh" <<SCRIPT
# A wall-clock cap: past it the run is killed and its last checkpoint (every 500 steps) is the result.
# Niced: beside several trainings the CPU-bound body subject writer took 560 s instead of ~135 s (sixth session).
cd "$root" && PYTHONPATH="$root" nice -n 10 timeout -s KILL ${minutes}m $python train_diffusion.py \
    --config configs/brain_config.yaml --data "$world" --out "$work/$name" train.max_steps=$steps \
    train.device=$device train.checkpoint_every=500 train.keep_every=${KEEP_EVERY:-0} ${overrides[*]} ${train_extra[*]} \
    > "$work/$name.log" 2>&1
echo \$? > "$work/$name.done"
SCRIPT
}

phase_start() {
    stamp "benchmark world ($clips x $seconds s) and 3 resamples"
    write_world "$python" "$world" "$clips" "$seconds" "${resamples[@]}"
    if [ -n "${TRAINED_CHECKPOINT:-}" ]; then  # weights trained elsewhere (e.g. an earlier machine's) for the first variant
        mkdir -p "$work/${variants[0]}"
        cp "$TRAINED_CHECKPOINT" "$work/${variants[0]}/checkpoint.pth"
        echo "# trained elsewhere: $TRAINED_CHECKPOINT" > "$work/train_${variants[0]}.sh"
        echo "[train] step unknown: weights trained elsewhere ($TRAINED_CHECKPOINT)" > "$work/${variants[0]}.log"
        echo 0 > "$work/${variants[0]}.done"
        stamp "${variants[0]}: the checkpoint given ($TRAINED_CHECKPOINT), no training"
        return
    fi
    stamp "trainings start: ${variants[*]} (up to $steps steps or $minutes min each)"
    for name in "${variants[@]}"; do
        rm -f "$work/$name.done"
        write_training_script "$name"
        # A session of its own: the training outlives this call; nothing is started after the call returns.
        setsid bash "$work/train_$name.sh" > /dev/null 2>&1 < /dev/null &
    done
}

phase_wait() {  # until every training is done, or WAIT_SECONDS [unlimited] have passed
    local deadline=$((SECONDS + ${WAIT_SECONDS:-1000000000}))
    for name in "${variants[@]}"; do
        if [ ! -f "$work/train_$name.sh" ]; then  # a bare machine (the one `start` ran on was given back)
            stamp "$name: no training was started on this machine ($work/train_$name.sh missing): run start first"
            return 1
        fi
        while [ ! -f "$work/$name.done" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 5; done
        stamp "$name: exit $(cat "$work/$name.done" 2>/dev/null || echo 'still running');" \
            "$(grep -a '^\[train\] step' "$work/$name.log" | tail -n 1)"
    done
}

phase_finish() {  # score (unless there is nothing to choose between), then the chosen variant's test report
    if [ "${#variants[@]}" -eq 1 ] && [ "${variants[0]}" != old ]; then
        phase_wait || return 1
        echo "${variants[0]}" > "$work/chosen_variant"
        stamp "one variant (${variants[0]}): no validation scoring, straight to the test report"
    else
        phase_score || return 1
    fi
    phase_preset
}

score_on_val() {  # score_on_val <checkpoint> <out> [evaluate args]: against the oracle on validation, split by band
    local checkpoint="$1" eval_out="$2"
    shift 2
    $python -m brain.evaluate --data "$world" --split val --checkpoint "$checkpoint" --oracle "${resamples[@]}" \
        --samples "$samples" --baselines none --save_samples --device "$device" --workers "$workers" \
        "${eval_extra[@]}" --out "$eval_out" "$@" &&
    $python benchmarks/diversity_breakdown.py --data "$world" --split val --saved_samples "$eval_out/samples" \
        --json "$eval_out/breakdown.json" --plot "$eval_out/breakdown.png"
}

phase_curve() {  # each variant's kept step copies (KEEP_EVERY) scored on validation as they appear, then the table
    local deadline=$((SECONDS + ${WAIT_SECONDS:-1000000000})) name kept step finished
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
    for name in "${variants[@]}"; do
        if [ ! -f "$work/train_$name.sh" ]; then
            stamp "$name: no training was started on this machine ($work/train_$name.sh missing): run start first"
            return 1
        fi
    done
    while :; do
        finished=1  # checked before the scan, so copies written just before a training ends are still scored
        for name in "${variants[@]}"; do [ -f "$work/$name.done" ] || finished=0; done
        for name in "${variants[@]}"; do
            for kept in "$work/$name"/checkpoint_[0-9]*.pth; do
                [ -e "$kept" ] || continue
                step=$((10#$(basename "$kept" .pth | cut -d_ -f2)))
                [ -f "$work/curve_$name/$step/metrics.json" ] && continue
                stamp "$name: scoring the copy of step $step"
                mkdir -p "$work/curve_$name"
                score_on_val "$kept" "$work/curve_$name/$step" > "$work/curve_$name/$step.log" 2>&1 \
                    || stamp "$name step $step: scoring failed (its log: $work/curve_$name/$step.log)"
            done
        done
        if [ "$finished" = 1 ] || [ "$SECONDS" -ge "$deadline" ]; then break; fi
        sleep 10
    done
    $python benchmarks/learning_curve.py "$work" "${variants[@]}" --plot "$out/learning_curve.png" | tee "$out/learning_curve.md"
    collect
}

phase_score() {  # waits for the trainings; every variant (one too) against the oracle on validation; the choice
    phase_wait || return 1
    # Evaluations side by side, each with its scoring workers: a few threads each, not every core each.
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
    local pids=() name
    for name in "${variants[@]}"; do  # every variant against the oracle (the shuffled speaker: on test)
        [ "$name" = old ] && continue
        score_on_val "$work/$name/checkpoint.pth" "$work/eval_$name" --sweep "${val_sweep[@]}" > "$work/eval_$name.log" 2>&1 &
        pids+=($!)
    done
    if [[ " ${variants[*]} " == *" old "* ]]; then  # the old sampler's samples, scored by today's metrics
        (cd "$OLD_CODE" && PYTHONPATH="$OLD_CODE" $python -m brain.evaluate --data "$world" --split test \
            --checkpoint "$work/old/checkpoint.pth" --samples "$samples" --baselines none --save_samples \
            --shuffled_speaker --device "$device" "${eval_extra[@]}" --out "$work/eval_old_raw" \
            > "$work/eval_old_raw.log" 2>&1 && cd - > /dev/null &&
         $python -m brain.evaluate --data "$world" --split test --oracle "${resamples[@]}" --baselines none \
            --external "old[ddim,15]=$work/eval_old_raw/samples/diffusion" \
            "old[shuffled]=$work/eval_old_raw/samples/diffusion[shuffled]" \
            --out "$work/eval_old" >> "$work/eval_old_raw.log" 2>&1) &
        pids+=($!)
    fi
    for pid in "${pids[@]}"; do wait "$pid"; done
    stamp "variants scored on the validation clips"
    for name in "${variants[@]}"; do
        [ -f "$work/eval_$name/metrics.md" ] && { echo "== $name (checkpoint of step $(checkpoint_step "$name"))"; sed -n '/Ratio to the oracle/,$p' "$work/eval_$name/metrics.md" | grep -E '^\| (method|oracle|diffusion)'; }
        grep -A 30 '^## Diversity and bias' "$work/eval_$name.log" | grep -E '^\| (cell|all/|exp/|rotation/all|jaw/all)'
    done
    $python benchmarks/closest_calibrated.py variants "$work" "${variants[@]}" > "$work/chosen_variant"
    stamp "closest to the oracle on validation: $(cat "$work/chosen_variant")"
    collect
}

attitude_eval() {  # attitude_eval <split> <samples> <sweep samples> <workers> <log>: gpu_stage_attitude.sh on the
    # chosen variant, sampled as `calibrate` chose (when it ran), into $work/attitude_eval[_<split>]
    SPLIT="$1" SAMPLING="$(chosen_sampling)" CORPUS="$world" CHECKPOINT="$work/$(chosen_variant)/checkpoint.pth" \
        RESAMPLES="${resamples[*]}" OUT_DIR="$work" SAMPLES="$2" SWEEP_SAMPLES="$3" WORKERS="$4" DEVICE="$device" \
        EVAL_CLIPS="$eval_clips" EVAL_SECONDS="$eval_seconds" bash benchmarks/gpu_stage_attitude.sh > "$5" 2>&1
}

calibrate_rows() {  # calibrate_rows <run>: $work/<run>/checkpoint.pth on validation with its preset row and
    # CAL_SWEEP's rows (once: eval_calibrate_<run>, its own folder, for `score`'s eval_<run> has other rows), then
    # the ratio and band tables
    local evaluation="$work/eval_calibrate_$1"
    if [ ! -f "$evaluation/breakdown.json" ]; then
        score_on_val "$work/$1/checkpoint.pth" "$evaluation" --sweep "${cal_sweep[@]}" \
            > "$evaluation.log" 2>&1 || { stamp "$1: validation scoring failed ($evaluation.log)"; return 1; }
    fi
    echo "== $1 (checkpoint of step $(checkpoint_step "calibrate_$1")), validation"
    sed -n '/Ratio to the oracle/,$p' "$evaluation/metrics.md" | grep -E '^\| (method|oracle|diffusion)'
    grep -A 40 '^## Diversity and bias' "$evaluation.log" | grep -E '^\| (cell|all/)'
}

phase_calibrate() {  # the variant's sampling chosen on validation among its preset row and CAL_SWEEP's rows
    phase_wait || return 1
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
    local name="${variants[0]}"
    local evaluation="$work/eval_calibrate_$name"
    echo "$name" > "$work/chosen_variant"
    calibrate_rows "$name" || return 1
    # the rule `score` applies to variants, applied to the sampling rows
    $python benchmarks/closest_calibrated.py rows "$evaluation/metrics.json" > "$work/chosen_sampling"
    local chosen_options
    chosen_options="$(chosen_sampling)"
    stamp "sampling closest to the oracle on validation: ${chosen_options:-the preset row, as trained}"
    if [ -n "${VAL_ATTITUDES:-}" ]; then  # the reaction controls on validation too, to choose attitude guidance by
        attitude_eval val "$samples" "${SWEEP_SAMPLES:-3}" "$workers" "$work/eval_attitudes_val.log"
        sed -n '/^## Attitude control/,/^Confusion/p' "$work/attitude_eval_val/metrics.md" | grep '^\*'
        sed -n '/^## guidance_attitude sweep/,$p' "$work/attitude_eval_val/metrics.md" | grep -E '^\| (attitude|.* accuracy)'
    fi
    collect
}

phase_energy() {  # the first variant fine-tuned on its own rollouts (on the tenth session's tiny CPU probe, at these
    # defaults: FD 4.83 -> 2.14 x the oracle's, FRDiv 0.21 -> 0.65, seams kept; docs/RESULTS.md), both copies on
    # validation as `calibrate` scores them
    phase_wait || return 1
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
    local name="${variants[0]}" energy_steps="${ENERGY_STEPS:-300}" energy_seconds="${ENERGY_SECONDS:-12}" copy
    local tuned="$work/${name}_energy"
    [ -f "$work/$name.done" ] || { stamp "$name: still training; run energy again once it is done"; return 1; }
    [ -n "${TINY:-}" ] && energy_steps=2 energy_seconds=4  # the toy world's clips are 6 s
    mkdir -p "$tuned"
    if [ ! -f "$tuned/checkpoint.pth" ]; then
        stamp "$name: $energy_steps rollout energy steps"
        $python benchmarks/rollout_energy_probe.py --checkpoint "$work/$name/checkpoint.pth" --data "$world" \
            --out "$tuned/checkpoint.pth" --steps "$energy_steps" --weight "${ENERGY_WEIGHT:-5}" \
            --seam_weight "${ENERGY_SEAM_WEIGHT:-0.3}" --seconds "$energy_seconds" --device "$device" \
            > "$work/energy_$name.log" 2>&1 \
            || { stamp "$name: the rollout fine-tuning failed ($work/energy_$name.log)"; return 1; }
    fi
    for copy in "$name" "${name}_energy"; do
        calibrate_rows "$copy" || return 1
    done
    collect
}

phase_preset() {  # the chosen variant's (default: shipped) attitude control and diversity-fidelity grid on the test
    # clips, sampled as `calibrate` chose (when it ran)
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
    local pids=() chosen
    chosen="$(chosen_variant)"
    attitude_eval test "${ATTITUDE_SAMPLES:-$samples}" "$sweep_samples" "${ATTITUDE_WORKERS:-$workers}" \
        "$work/eval_attitudes.log" &
    pids+=($!)
    if [ -z "${NO_GRID:-}" ]; then
        $python benchmarks/diversity_fidelity.py --data "$world" --oracle "${resamples[@]}" \
            --checkpoint "$work/$chosen/checkpoint.pth" --out "$work/df_shipped" --samples "$samples" \
            --max_clips "$grid_clips" --device "$device" --workers "$workers" "${eval_extra[@]}" \
            > "$work/df_shipped.log" 2>&1 &
        pids+=($!)
    fi
    for pid in "${pids[@]}"; do wait "$pid"; done
    stamp "evaluations done"
    $python -m utils.checkpoint export "$work/$chosen/checkpoint.pth" "$out/brain_${chosen}_slim.pth" || true
    collect
}

collect() {  # one archive of every small result (the lent machine returns at most 8 files)
    local files=()
    for path in "$work"/*.log "$work"/df_shipped "$work"/attitude_eval* "$work"/eval_* "$work"/curve_* "$work"/*/scalars.csv \
                "$work"/*/config.yaml "$work"/chosen_variant "$work"/chosen_sampling; do
        [ -e "$path" ] && files+=("${path#"$work"/}")
    done
    tar -C "$work" --exclude='samples' -czf "$out/brain_results.tar.gz" "${files[@]}"
    stamp "results: $out/brain_results.tar.gz ($(du -h "$out/brain_results.tar.gz" | cut -f1))"
    for table in "$work/df_shipped/diversity_fidelity.md" "$work/attitude_eval/metrics.md"; do
        if [ -f "$table" ]; then echo "== $table"; tail -n 40 "$table"; fi
    done
}

for phase in "$@"; do
    "phase_$phase"
done
