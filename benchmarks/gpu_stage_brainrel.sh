#!/usr/bin/env bash
# GPU stage of the brain-training reliability work (issue #10: DDP, train.device under torchrun): about 5
# minutes on a host with 2 GPUs (nvidia-h200-x2); the first step alone also runs on one GPU.
#
#   OUT_DIR=logs WORK=/tmp/work bash benchmarks/gpu_stage_brainrel.sh
#
# Writes $OUT_DIR/{gpu_tests_brainrel,ddp_check}.log:
#   gpu_tests_brainrel  tests/test_brain_ddp.py on a CUDA machine: train.device=cpu under torchrun stays on the
#                       CPU (gloo), an explicit cuda:N is refused; plus the CPU DDP tests          ~1 min, 1 GPU
#   ddp_check           brain_config.yaml under torchrun on 2 GPUs: rank 0 on cuda:0, 400 steps then --resume
#                       to 600, each scalar of each step logged once, validation loss halves       ~4 min, 2 GPUs
# Each prints its own pass/fail; the last line of each log says "passed" or names the failed check.
set -uo pipefail
cd "$(dirname "$0")/.."
source benchmarks/stage_lib.sh
out_dir="${OUT_DIR:-gpu_logs}"
work="${WORK:-/tmp/diff_listener_gpu}/brainrel"
mkdir -p "$out_dir" "$work"

LOG_DIR="$out_dir" TAIL_LINES=30

run_logged gpu_tests_brainrel python3 -m pytest -q tests/test_brain_ddp.py -p no:cacheprovider -rs
gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
if [ "$gpus" -ge 2 ]; then
    run_logged ddp_check bash benchmarks/ddp_check.sh 2 "$work/ddp"
else
    echo "=== ddp_check: skipped, $gpus GPU(s) here (needs 2)" | tee "$out_dir/ddp_check.log"
fi
