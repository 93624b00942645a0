#!/usr/bin/env bash
# Every GPU measurement of the project in three calls of a lent machine (each under its 10-minute limit; the
# machine goes back 30 s after a call, so the next call follows at once and polls what the last one started).
# Installs the wheels in .whl/ (gsplat, imageio-ffmpeg) into a private site dir, builds gsplat's CUDA extension
# once, and runs the stage scripts in an order that keeps each timed figure on an otherwise idle GPU:
#
# Measured on an H200 (2026-12-02): `start` 8.6 min; `middle` did not finish in 10 min at K=10 on all test
# clips (the diversity-fidelity grid and the attitude sweeps side by side); the defaults now (K=5, the grid on
# 15 clips: ~40 s per diffusion row of 30 clips at K=5) are sized to fit, not yet timed.
#
#   OUT_DIR=$OUT bash benchmarks/gpu_session.sh start    # ~8 min: gsplat build, the gpu-marked tests, the body's
#       subject, the benchmark world + 3 resamples; the brain trainings (shipped, x0weight, old) side by side in
#       the background; when they are done, the body's training starts alone in the background
#   OUT_DIR=$OUT bash benchmarks/gpu_session.sh middle   # ~9 min (untimed at these sizes): the brain evaluations against the oracle
#       (diversity-fidelity grid, attitude control, ablations) while the body trains; body evaluation; then,
#       the GPU idle, the body's and the brain's render/chunk speed
#   OUT_DIR=$OUT bash benchmarks/gpu_session.sh live     # ~8 min: streaming wav2vec2, offline synthesis, and the
#       5-minute live session on the real clock, alone on the GPU
#
# Environment: OUT_DIR (what comes back: logs, tables, plots, one archive per stage), WORK (scratch on the
# machine, default /tmp/diff_listener_gpu), OLD_CODE (the brain before the sampler change, for the `old`
# control: `git archive dbc6ea1 brain utils configs train_diffusion.py data_utils` unpacked; .exp/old_brain when
# present), BRAIN_MINUTES [8] (each brain training's wall-clock cap), BRAIN_STEPS [10000], SAMPLES [5] (per
# clip and evaluated method), GRID_CLIPS [15] (benchmarks/gpu_stage_brain.sh).
# Other stages: tests (the gpu-marked tests alone), ddp (needs 2 GPUs: benchmarks/gpu_stage_brainrel.sh).
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
export STEPS="${BRAIN_STEPS:-10000}" MINUTES="${BRAIN_MINUTES:-8}" SAMPLES="${SAMPLES:-5}" SWEEP_SAMPLES="${SWEEP_SAMPLES:-1}"
brain_work="$WORK/brain"
body=(env OUT_DIR="$logs/body" bash benchmarks/gpu_stage_body.sh)
brain=(env OUT_DIR="$logs/brain" bash benchmarks/gpu_stage_brain.sh)

stamp() { echo "[$(date +%H:%M:%S)] $*"; }

LOG_DIR="$logs" TAIL_LINES=20
source benchmarks/stage_lib.sh

pack() {  # pack <name>: every log, table, plot and metrics file so far, as $OUT_DIR/<name>.tar.gz
    tar -C "$WORK" --exclude='samples' --exclude='brain_results.tar.gz' --exclude='*.pth' --exclude='*.npy' --exclude='*.mp4' -czf "$out/$1.tar.gz" logs
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
    # Until 9 min into this call at most: the body's training must start before the call returns.
    WAIT_SECONDS=$((540 - SECONDS)) run_logged brain_wait "${brain[@]}" wait
    run_logged body_train "${body[@]}" train  # alone on the GPU from here: its 5-minute target is what is measured
    pack start
}

stage_middle() {
    WORKERS="${WORKERS:-3}" run_logged brain_finish "${brain[@]}" finish &
    local evaluations=$!
    run_logged body_evaluate "${body[@]}" evaluate
    wait "$evaluations"
    cp "$logs/brain/brain_results.tar.gz" "$out/" 2>/dev/null
    run_logged bench_body "${body[@]}" bench
    run_logged bench_brain "${brain[@]}" speed
    pack middle
}

stage_live() {
    BRAIN_CKPT="$brain_work/shipped/checkpoint.pth" BODY_DIR="$WORK/body_model" OUT_DIR="$logs/synth" \
        run_logged synth bash benchmarks/gpu_stage_synth.sh
    pack live
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

for stage in "$@"; do
    "stage_$stage"
done
