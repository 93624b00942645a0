#!/usr/bin/env bash
# Runs named stages on a GPU machine where the project is not pip-installed (e.g. a lent box with its own
# torch): installs any wheels found in .whl/ into a private site dir, builds gsplat's CUDA extension once,
# then runs the stages in order, each logged to $LOG_DIR/<stage>.log.
#
#   LOG_DIR=logs bash benchmarks/gpu_session.sh check          # GPU tests + rasteriser/brain benchmarks
#   LOG_DIR=logs bash benchmarks/gpu_session.sh train synth    # body + brain training, then synthesis bench
#
# Stages: check | body | brain | synth | ddp (see the functions below).
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

run() {  # run <log name> <command...>: time it, keep its output, never stop the session on failure
    local name="$1"; shift
    echo "=== $name: $*"
    local start=$SECONDS
    "$@" 2>&1 | tee "$log_dir/$name.log" | tail -n 40
    echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"
}

stage_check() {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$log_dir/gpu.txt"
    python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())" | tee -a "$log_dir/gpu.txt"
    run gsplat_build python3 -c "import time, torch; t=time.time(); from gsplat.cuda._backend import _C; print('gsplat CUDA extension ready in', round(time.time()-t,1), 's')"
    run gpu_tests python3 -m pytest -q -m gpu tests -p no:cacheprovider
    run bench_rasterizer python3 benchmarks/bench_rasterizer.py --reference_counts 2000 --reference_batches 1
    run bench_brain python3 benchmarks/bench_brain.py
    [ -f benchmarks/bench_body.py ] && run bench_body python3 benchmarks/bench_body.py
    run brain_corpus_small python3 -m data_utils.synthetic_dyadic --out "$work/corpus_small" --clips 40 --seconds 30 --seed 0
    run brain_speed_probe python3 train_diffusion.py --config configs/brain_config.yaml --data "$work/corpus_small" \
        --out "$work/brain_probe" train.max_steps=300
    run subject512 python3 -m data_utils.synthetic_subject --out "$work/subject512" --frames 4500 --size 512 --device cuda --workers 16
}

for stage in "$@"; do
    "stage_$stage"
done
