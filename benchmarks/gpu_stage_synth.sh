#!/usr/bin/env bash
# GPU stage of the live-from-voice and synthesis work (issues #10, #12, #13): about 7 minutes on one
# H100/H200, of which the 5-minute real-clock live session is 5.
#
#   BRAIN_CKPT=<brain checkpoint.pth> BODY_DIR=<body model dir> OUT_DIR=logs WORK=/tmp/work \
#       bash benchmarks/gpu_stage_synth.sh
#
# BRAIN_CKPT / BODY_DIR: a trained brain (e.g. brain_config.yaml on the synthetic corpus) and a body (e.g.
# body.yaml on the 512x512 synthetic subject); speed depends on their size, not their training.
# Writes $OUT_DIR/{gpu_tests_synth,bench_wav2vec_stream,bench_live,bench_synthesis}.log, each a table:
#   bench_wav2vec_stream  deviation of the causal wav2vec2 (base size, random weights) from whole-file
#                         extraction per left context; its cost per 8-frame chunk (p50/p95/max ms)   ~0.5 min
#   bench_live            5 min from the voice on the real clock: latency table (features, brain, render,
#                         encode, first audio sample -> frames ready; target p95 <= 360 ms), sustained
#                         fps, and per-minute drift tables (live; synthetic-features control)         ~6 min
#   bench_synthesis       offline 60 s K=1 and K=3 incl. encode (target <= 3 s), streaming as fast as
#                         possible                                                                       ~1 min
set -uo pipefail
cd "$(dirname "$0")/.."
: "${BRAIN_CKPT:?set BRAIN_CKPT to a brain checkpoint.pth}"
: "${BODY_DIR:?set BODY_DIR to a body model directory}"
out_dir="${OUT_DIR:-gpu_logs}"
work="${WORK:-/tmp/diff_listener_gpu}/synth"
mkdir -p "$out_dir" "$work"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

run() {  # run <log name> <command...>: time it, keep its output, go on after a failure
    local name="$1"; shift
    echo "=== $name: $*"
    local start=$SECONDS
    "$@" 2>&1 | tee "$out_dir/$name.log" | tail -n 45
    echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"
}

run gpu_tests_synth python3 -m pytest -q -m gpu tests/test_synthesis_cli.py tests/test_data_wav2vec.py \
    -p no:cacheprovider
run bench_wav2vec_stream python3 benchmarks/bench_wav2vec_stream.py --device cuda --seconds 60 \
    --deviation_seconds 30 --contexts 0 1 2
run bench_live python3 benchmarks/bench_live.py --brain_checkpoint "$BRAIN_CKPT" --body_checkpoint "$BODY_DIR" \
    --device cuda --seconds 300 --work "$work/live"
run bench_synthesis python3 benchmarks/bench_synthesis.py --brain_checkpoint "$BRAIN_CKPT" \
    --body_checkpoint "$BODY_DIR" --device cuda --seconds 60 --realtime_seconds 0 --work "$work/synthesis"
