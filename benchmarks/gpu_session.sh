#!/usr/bin/env bash
# Runs named stages on a GPU machine where the project is not pip-installed (e.g. a lent box with its own
# torch): installs any wheels found in .whl/ into a private site dir, builds gsplat's CUDA extension once,
# then runs the stages in order, each logged to $LOG_DIR/<stage>.log.
#
#   LOG_DIR=logs bash benchmarks/gpu_session.sh check          # GPU tests + rasteriser/brain benchmarks
#   LOG_DIR=logs bash benchmarks/gpu_session.sh train          # body + brains side by side, eval, synthesis bench
#
# Stages: check | train | final | tests | profile | ddp (see the functions below).
set -uo pipefail
cd "$(dirname "$0")/.."
log_dir="${LOG_DIR:-gpu_logs}"
work="${WORK:-/tmp/diff_listener_gpu}"
mkdir -p "$log_dir" "$work"
export PYTHONUNBUFFERED=1 MAX_JOBS="${MAX_JOBS:-16}"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! command -v python >/dev/null; then  # some images ship only python3; the project's scripts call python
    mkdir -p /tmp/python_shim && ln -sf "$(command -v python3)" /tmp/python_shim/python
    export PATH="/tmp/python_shim:$PATH"
fi

run() {  # run <log name> <command...>: time it, keep its output, never stop the session on failure
    local name="$1"; shift
    echo "=== $name: $*"
    local start=$SECONDS
    "$@" 2>&1 | tee "$log_dir/$name.log" | tail -n 40
    echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"
}

build_gsplat() {  # JIT-builds gsplat's CUDA extension (~50 s) so no timed step pays for it
    run gsplat_build python3 -c "from gsplat.cuda._backend import _C"
}

ensure_subject512() {  # the 512x512, 4,500-frame synthetic subject every body stage trains on
    [ -f "$work/subject512/meta.json" ] || run subject512 python3 -m data_utils.synthetic_subject \
        --out "$work/subject512" --frames 4500 --size 512 --device cuda --workers 16
}

train_body512() {  # train_body512 <model name> <minutes> <max steps>: configs/body.yaml on that subject
    python3 train_body.py -s "$work/subject512" -m "$work/$1" --config configs/body.yaml \
        "train.max_minutes=$2" "train.max_steps=$3" train.workers=12
}

stage_check() {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$log_dir/gpu.txt"
    python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())" | tee -a "$log_dir/gpu.txt"
    build_gsplat
    run gpu_tests python3 -m pytest -q -m gpu tests -p no:cacheprovider
    run bench_rasterizer python3 benchmarks/bench_rasterizer.py --reference_counts 2000 --reference_batches 1
    run bench_brain python3 benchmarks/bench_brain.py
    run bench_body python3 benchmarks/bench_body.py
    run brain_corpus_small python3 -m data_utils.synthetic_dyadic --out "$work/corpus_small" --clips 40 --seconds 30 --seed 0
    run brain_speed_probe python3 train_diffusion.py --config configs/brain_config.yaml --data "$work/corpus_small" \
        --out "$work/brain_probe" train.max_steps=300
    ensure_subject512
}

stage_train() {
    # The three trainings share the GPU (none of them fills it), so they run side by side:
    # body (synthetic 512x512 subject, body.yaml capped by BODY_MINUTES) and both brains of the eval report.
    local eval_work="$work/eval" corpus="$work/eval/corpus_300x20s_seed0" steps="${BRAIN_STEPS:-4000}"
    mkdir -p "$eval_work"
    (
        ensure_subject512
        train_body512 body512 "${BODY_MINUTES:-5}" "${BODY_STEPS:-12000}"
        python3 benchmarks/bench_body.py --model "$work/body512"
    ) > "$log_dir/body.log" 2>&1 &
    local body_pid=$!
    run corpus300 python3 -m data_utils.synthetic_dyadic --out "$corpus" --clips 300 --seconds 20 --seed 0  # eval_report.sh's world
    python3 train_diffusion.py --config configs/brain_config.yaml --data "$corpus" --out "$eval_work/diffusion" \
        "train.max_steps=$steps" > "$log_dir/train_diffusion.log" 2>&1 &
    local diffusion_pid=$!
    run train_regression python3 train_diffusion.py --config configs/brain_config.yaml --data "$corpus" \
        --out "$eval_work/regression" model.objective=regression "train.max_steps=$steps"
    wait "$diffusion_pid"; echo "=== train_diffusion: exit $?"; tail -n 3 "$log_dir/train_diffusion.log"
    # Both checkpoints are at max_steps, so the report's training phases only resume and stop.
    WORK="$eval_work" TRAIN_STEPS="$steps" run eval_report bash benchmarks/eval_report.sh "$log_dir/eval"
    wait "$body_pid"; echo "=== body: exit $?"; tail -n 30 "$log_dir/body.log"
    run bench_synthesis python3 benchmarks/bench_synthesis.py --brain_checkpoint "$eval_work/diffusion/checkpoint.pth" \
        --body_checkpoint "$work/body512" --work "$work/synth" --realtime_seconds 10
}

stage_final() {
    # Parity diagnostics and the GPU tests, then (GPU otherwise idle) one longer body training to see where
    # validation PSNR levels off, and the trained body's render speed.
    build_gsplat
    run parity_diagnostics python3 benchmarks/parity_diagnostics.py
    run gpu_tests python3 -m pytest -q -m gpu tests -p no:cacheprovider
    ensure_subject512
    run body_long train_body512 body_long "${BODY_MINUTES:-6}" "${BODY_STEPS:-22000}"
    run bench_body python3 benchmarks/bench_body.py --model "$work/body_long" --batch 1 4 16
}

stage_tests() {  # the gpu-marked tests alone
    build_gsplat
    run gpu_tests python3 -m pytest -q -m gpu tests -p no:cacheprovider
}

stage_profile() {  # where a batch-1 render of a (briefly) trained body spends its time
    build_gsplat
    ensure_subject512
    run body_short train_body512 body_profile "${BODY_MINUTES:-2}" "${BODY_STEPS:-8000}"
    run profile_body python3 benchmarks/profile_body_render.py --model "$work/body_profile"
}

stage_ddp() {  # needs >= 2 GPUs: train_diffusion.py under torchrun, resume, rank-0-only outputs
    nvidia-smi --query-gpu=name --format=csv | tee "$log_dir/gpu.txt"
    run ddp_check bash benchmarks/ddp_check.sh "${DDP_GPUS:-2}" "$work/ddp"
}

for stage in "$@"; do
    "stage_$stage"
done
