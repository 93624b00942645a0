#!/usr/bin/env bash
# Every GPU measurement of the project in three calls of a lent machine (each under its 10-minute limit; the
# machine goes back 30 s after a call, so the next call follows at once and polls what the last one started).
# Installs the wheels in .whl/ (gsplat, imageio-ffmpeg) into a private site dir, builds gsplat's CUDA extension
# once, and runs the stage scripts in an order that keeps each timed figure on an otherwise idle GPU:
#
# Measured on an H200 (2026-12-02, three sessions): `start` 7.7–9.4 min; `middle` was cut at the 10-minute limit
# twice, by evaluations that sampled one clip at a time (~40 s per diffusion row alone, 122 s with four side
# by side). Since the fourth session the evaluations denoise every clip's windows as one batch
# (ListenerPolicy.generate_many), so the test report runs at K = ATTITUDE_SAMPLES [10] with the
# diversity-fidelity grid beside it (NO_GRID empty), and the one preset (VARIANTS [shipped]: nothing to choose)
# trains for BRAIN_MINUTES [10], on into the `middle` call, toward its 12,000 steps beside the body (the fifth
# session: 8,789 steps in the 10 minutes on the shared GPU; `start` 9.4 min, `middle` 5.3 min, `live` with its
# stand-ins and LIVE_SECONDS=240 8.1 min):
#
#   OUT_DIR=$OUT bash benchmarks/gpu_session.sh start    # gsplat build, the gpu-marked tests, the body's subject,
#       the benchmark world + 3 resamples; the brain variants (gpu_stage_brain.sh: VARIANTS) trained side by side
#       in the background; once the subject is made the body's training starts in the background too
#   OUT_DIR=$OUT bash benchmarks/gpu_session.sh middle   # with several VARIANTS, each against the oracle on the
#       validation clips (one diffusion row each, side by side) and the closest with oracle-smooth seams chosen;
#       then the chosen one on the test clips (main table with the shuffled speaker, mean, nearest; attitude
#       control at ATTITUDE_SAMPLES per clip); the body's evaluation beside them; then the body's render speed
#   OUT_DIR=$OUT bash benchmarks/gpu_session.sh live     # alone on the GPU: the 5-minute live session on the
#       real clock with the chosen brain, compiled, its extractor without the 5-ms look-ahead (NO_LOOK_AHEAD [1];
#       empty: with it), asking the speaker clip's listener attitude (LIVE_ATTITUDE [speaker_clip]; empty: none)
#       (BENCHES [live]: add `wav2vec synthesis` for the streaming feature cost and the offline synthesis
#       timing); then the brain's chunk latency if the call has time. On a machine where start never ran (the
#       one it ran on went back) it first trains stand-ins of the shipped sizes (the preset brain on the whole
#       benchmark world for 3 minutes; the body on a 900-frame subject for STAND_IN_BODY_MINUTES [1.5]), ~3 min
#       more (until the sixth session the brain was 300 steps on a 24-clip world); LIVE_SECONDS
#       [300] shortens the session to fit the call
#
# Environment: OUT_DIR (what comes back: logs, tables, plots, one archive per stage), WORK (scratch on the
# machine, default /tmp/diff_listener_gpu), OLD_CODE (the brain before the sampler change, for the `old`
# control: `git archive dbc6ea1 brain utils configs train_diffusion.py data_utils` unpacked; .exp/old_brain when
# present; only for VARIANTS=... old), BRAIN_MINUTES [10] (each brain training's wall-clock cap), BRAIN_STEPS
# [12000], SAMPLES [5] (per clip and evaluated method; the grid's), ATTITUDE_SAMPLES [10], SWEEP_SAMPLES [3],
# ATTITUDE_WORKERS [8], VARIANTS [shipped], NO_GRID [empty: the grid runs], GRID_CLIPS [0: all], BATCH_WINDOWS
# [512], BENCHES [live], NO_LOOK_AHEAD [1], LIVE_ATTITUDE [speaker_clip]
# (benchmarks/gpu_stage_brain.sh).
# Other stages: tests (the gpu-marked tests alone), ddp (needs 2 GPUs: benchmarks/gpu_stage_brainrel.sh), brain
# (VARIANTS trained for BRAIN_MINUTES_ALONE [6.3] side by side, alone on the GPU, then scored on the validation
# clips and chosen — all in one call, so a machine that goes back afterwards loses nothing: the sixth session
# lost a whole `start` that way; four variants took 8 min; the seventh: 7.9 min, then an equal-steps control
# reversed the choice, docs/RESULTS.md), curve (the preset's learning curve: `curve` twice, back to back; the
# stage's own comment says how), calibrate (the preset to 12,000 steps, its sampling chosen on validation among
# history-guidance rows, the test report with it: `calibrate` two or three times, back to back), energy (after
# calibrate, on the same machine: the variant fine-tuned on its own rollouts, benchmarks/rollout_energy_probe.py,
# and both copies on validation).
# That seventh session found diversity rising with the training step, so variants capped by time (and
# reaching different steps) are only compared on such a curve or at one step (`score` warns when they differ).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT_DIR:?set OUT_DIR to the folder whose files come back}"
export WORK="${WORK:-/tmp/diff_listener_gpu}"
mkdir -p "$out" "$WORK"
export PYTHONUNBUFFERED=1 MAX_JOBS="${MAX_JOBS:-16}" TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
if compgen -G ".whl/*.whl" >/dev/null && [ ! -d /tmp/site/gsplat ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! command -v python >/dev/null; then  # some images ship only python3; the project's scripts call python
    mkdir -p /tmp/python_shim && ln -sf "$(command -v python3)" /tmp/python_shim/python
    export PATH="/tmp/python_shim:$PATH"
fi
logs="$WORK/logs"
mkdir -p "$logs"
[ -z "${OLD_CODE:-}" ] && [ -d .exp/old_brain ] && export OLD_CODE="$PWD/.exp/old_brain"
export STEPS="${BRAIN_STEPS:-12000}" MINUTES="${BRAIN_MINUTES:-10}" SAMPLES="${SAMPLES:-5}" SWEEP_SAMPLES="${SWEEP_SAMPLES:-3}" NO_GRID="${NO_GRID-}"
export VARIANTS="${VARIANTS:-shipped}" ATTITUDE_SAMPLES="${ATTITUDE_SAMPLES:-10}" ATTITUDE_WORKERS="${ATTITUDE_WORKERS:-8}"
export BENCHES="${BENCHES:-live}" NO_LOOK_AHEAD="${NO_LOOK_AHEAD-1}" LIVE_ATTITUDE="${LIVE_ATTITUDE-speaker_clip}"
brain_work="$WORK/brain"
body=(env OUT_DIR="$logs/body" bash benchmarks/gpu_stage_body.sh)
brain=(env OUT_DIR="$logs/brain" bash benchmarks/gpu_stage_brain.sh)

stamp() { echo "[$(date +%H:%M:%S)] $*"; }

LOG_DIR="$logs" TAIL_LINES=20
source benchmarks/stage_lib.sh

pack() {  # pack <name>: every log, table, plot and metrics file so far (the brain's finished evaluations too)
    local extra=()
    for path in "$brain_work"/eval_* "$brain_work"/curve_* "$brain_work"/attitude_eval* "$brain_work"/df_shipped "$brain_work"/*/scalars.csv \
                "$brain_work"/*.log "$brain_work"/chosen_variant "$brain_work"/chosen_sampling; do
        [ -e "$path" ] && extra+=("${path#"$WORK"/}")
    done
    tar -C "$WORK" --exclude='samples' --exclude='brain_results.tar.gz' --exclude='*.pth' --exclude='*.npy' \
        --exclude='*.mp4' --exclude='*.tmp-*' -czf "$out/$1.tar.gz" logs "${extra[@]}"
    stamp "packed $out/$1.tar.gz ($(du -h "$out/$1.tar.gz" | cut -f1))"
}

stage_start() {
    { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
      python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())"
      date -u; } | tee "$logs/gpu.txt"  # the commit is the caller's to record: the lent copy's .git can be stale
    run_logged gsplat_build python3 -c "from gsplat.cuda._backend import _C; print('gsplat CUDA extension ready')" &
    local build=$!
    run_logged body_subject "${body[@]}" subject &
    local subject=$!
    run_logged brain_start "${brain[@]}" start  # the world (CPU, ~20 s), then the trainings in the background
    wait "$build"
    run_logged gpu_tests python3 -m pytest -q -m gpu tests -p no:cacheprovider -rs
    wait "$subject"
    run_logged body_train "${body[@]}" train  # in the background: the live stage needs a body of the right size
    WAIT_SECONDS=$((560 - SECONDS)) run_logged brain_wait "${brain[@]}" wait
    pack start
}

stage_middle() {
    WORKERS="${WORKERS:-3}" run_logged brain_finish "${brain[@]}" finish &
    local evaluations=$!
    run_logged body_evaluate "${body[@]}" evaluate
    wait "$evaluations"
    cp "$logs/brain/brain_results.tar.gz" "$out/" 2>/dev/null
    run_logged bench_body "${body[@]}" bench  # the GPU idle again
    pack middle
}

stand_ins() {  # a brain and a body of the shipped sizes, trained briefly: the live figures depend on size only
    stamp "no trained brain or body on this machine (start ran on another): stand-ins of the shipped sizes"
    run_logged gsplat_build python3 -c "from gsplat.cuda._backend import _C" &
    local build=$!
    # The preset on the whole benchmark world for the 3 minutes the body's stand-in takes anyway (a few thousand
    # steps): a brain whose per-minute drift table means something, where 300 steps on 24 clips said nothing.
    (VARIANTS=shipped STEPS=12000 MINUTES=3 run_logged brain_start "${brain[@]}" start \
        && run_logged brain_wait "${brain[@]}" wait) &
    local brain_pid=$!
    SUBJECT_FRAMES=900 run_logged body_subject "${body[@]}" subject
    wait "$build"
    TRAIN_MINUTES="${STAND_IN_BODY_MINUTES:-1.5}" run_logged body_train "${body[@]}" train
    run_logged body_wait "${body[@]}" wait
    wait "$brain_pid"
}

stage_live() {
    local chosen
    if [ -f "$logs/body/body_train.log" ]; then  # start (or an earlier live) trained here: its brain and body
        run_logged body_wait "${body[@]}" wait
        run_logged brain_wait "${brain[@]}" wait
    else
        stand_ins
    fi
    chosen="$(cat "$brain_work/chosen_variant" 2>/dev/null || echo shipped)"
    BRAIN_CKPT="$brain_work/$chosen/checkpoint.pth" BODY_DIR="$WORK/body_model" OUT_DIR="$logs/synth" \
        run_logged synth bash benchmarks/gpu_stage_synth.sh
    [ "$SECONDS" -lt 420 ] && run_logged bench_brain "${brain[@]}" speed  # only if it still fits the call
    pack live
}

stage_brain() {  # one call, nothing left running: the variants trained side by side, then scored on validation
    MINUTES="${BRAIN_MINUTES_ALONE:-6.3}" run_logged brain_start "${brain[@]}" start
    WORKERS="${WORKERS:-3}" run_logged brain_score "${brain[@]}" score
    cp "$logs/brain/brain_results.tar.gz" "$out/" 2>/dev/null
    pack brain
}

stage_curve() {  # the preset's learning curve over two calls, nothing else on the GPU: the first starts its
    # training (KEEP_EVERY [1500]: a slim copy every that many steps; CURVE_MINUTES [16] its cap) and scores the
    # copies written before the call ends; the next `curve` call, at once, scores the rest and prints the table
    export KEEP_EVERY="${KEEP_EVERY:-1500}"
    if [ ! -f "$brain_work/train_${VARIANTS%% *}.sh" ]; then
        MINUTES="${CURVE_MINUTES:-16}" run_logged brain_start "${brain[@]}" start
    fi
    WAIT_SECONDS=$((545 - SECONDS)) run_logged brain_curve "${brain[@]}" curve
    cp "$logs/brain/brain_results.tar.gz" "$out/" 2>/dev/null
    pack curve
}

stage_calibrate() {  # the preset to its 12,000 steps alone, its sampling chosen on validation, the test report:
    # over two or three calls back to back, each doing what the last left. The first starts the training (KEEP_EVERY
    # [0]) and runs the brain's gpu-marked tests beside it; a call whose training is done scores the checkpoint on
    # validation with CAL_SWEEP's sampling rows beside its own (gpu_stage_brain.sh calibrate: history guidance)
    # and, if the call has ~4.5 min left, the test report sampled as chosen (`preset`, without the grid) and,
    # with ~2 min left after that, the chosen sampling's chunk latency (`speed`, the live mode's row only).
    # Eighth session, H200: 542 s (training started, tests), then 363 s (the rest of the training, the validation
    # rows in 45 s, the test report in 164 s, the chunk in 29 s): two calls did it all. Ninth session, H200,
    # VARIANTS=memory: 562 s (training started, tests), then 560 s (the last 90 s of training, the validation rows
    # in 52 s, the test report in 191 s, the chunk in 27 s).
    export KEEP_EVERY="${KEEP_EVERY:-0}"
    local trained=1 name
    if [ ! -f "$brain_work/train_${VARIANTS%% *}.sh" ]; then  # (TRAINED_CHECKPOINT: weights from an earlier call)
        MINUTES="${CURVE_MINUTES:-16}" run_logged brain_start "${brain[@]}" start
        [ -n "${TRAINED_CHECKPOINT:-}" ] && touch "$brain_work/exported"
        [ -n "${TRAINED_CHECKPOINT:-}" ] || run_logged gpu_brain_tests python3 -m pytest -q -m gpu \
            tests/test_brain_model.py tests/test_attitude.py -p no:cacheprovider -rs
    fi
    WAIT_SECONDS=$((540 - SECONDS)) run_logged brain_wait "${brain[@]}" wait
    for name in $VARIANTS; do [ -f "$brain_work/$name.done" ] || trained=0; done
    if [ "$trained" = 1 ] && [ ! -f "$brain_work/exported" ]; then  # the weights come back too, once: 16-MiB parts
        # of an fp16 slim copy (`cat brain_fp16.pth.part* > brain.pth` loads as any brain checkpoint), for CPU work
        python3 -m utils.checkpoint export --half "$brain_work/${VARIANTS%% *}/checkpoint.pth" "$WORK/brain_fp16.pth" &&
        split -b 15M -d "$WORK/brain_fp16.pth" "$out/brain_fp16.pth.part" && touch "$brain_work/exported"
    fi
    if [ "$trained" = 1 ]; then
        [ -f "$brain_work/chosen_sampling" ] || WORKERS="${WORKERS:-4}" run_logged brain_calibrate "${brain[@]}" calibrate
        if [ -f "$brain_work/chosen_sampling" ] && [ ! -f "$brain_work/attitude_eval/metrics.json" ] && [ "$SECONDS" -lt 290 ]; then
            NO_GRID=1 run_logged brain_preset "${brain[@]}" preset
        fi
        if [ -f "$brain_work/attitude_eval/metrics.json" ] && [ ! -f "$logs/brain/bench_brain.txt" ] && [ "$SECONDS" -lt 430 ]; then
            SPEED_ROWS=live run_logged bench_brain "${brain[@]}" speed
        fi
    fi
    pack calibrate  # (brain_results.tar.gz is inside: the weights' parts leave no room for it twice)
}

stage_energy() {  # after `calibrate` on the same machine: its variant fine-tuned on its own rollouts with the
    # energy score (gpu_stage_brain.sh energy), both copies on validation; again at once if the call ends first
    WAIT_SECONDS=$((540 - SECONDS)) run_logged brain_energy "${brain[@]}" energy
    cp "$logs/brain/brain_results.tar.gz" "$out/" 2>/dev/null
    pack energy
}

stage_tests() {
    run_logged gsplat_build python3 -c "from gsplat.cuda._backend import _C"
    run_logged gpu_tests python3 -m pytest -q -m gpu tests -p no:cacheprovider -rs
    pack tests
}

stage_ddp() {
    run_logged ddp env OUT_DIR="$logs/ddp" bash benchmarks/gpu_stage_brainrel.sh
    pack ddp
}

# A stage that overruns the lent machine's 10-minute call still returns what it has: a watchdog packs
# <stage>_partial.tar.gz after STAGE_SECONDS [560] (the call is killed at 600 s with nothing packed otherwise).
for stage in "$@"; do
    (sleep "${STAGE_SECONDS:-560}"; pack "${stage}_partial") &
    watchdog=$!
    "stage_$stage"
    kill "$watchdog" 2>/dev/null
done
