#!/usr/bin/env bash
# GPU stage of the live-from-voice and synthesis work (issues #10, #12, #13): about 7 minutes on one
# H100/H200, of which the 5-minute real-clock live session is 5.
#
#   BRAIN_CKPT=<brain checkpoint.pth> BODY_DIR=<body model dir> OUT_DIR=logs WORK=/tmp/work \
#       bash benchmarks/gpu_stage_synth.sh
#
# BRAIN_CKPT / BODY_DIR: a trained brain (e.g. brain_config.yaml on the synthetic corpus) and a body (e.g.
# body.yaml on the 512x512 synthetic subject); speed depends on their size, not their training.
# For a CPU smoke run of the script itself: DEVICE=cpu LIVE_SECONDS=8 BIN_SECONDS=4 WAV2VEC=<tiny wav2vec2 dir>
# (defaults: cuda, 300 s in 60 s bins, a base-size random-weight Wav2Vec2 made by each benchmark).
# Writes $OUT_DIR/{bench_wav2vec_stream,bench_live,bench_synthesis}.log, each a table (the gpu-marked tests of
# this work, in tests/test_synthesis_cli.py and tests/test_data_wav2vec.py, run with the session's tests stage):
#   bench_wav2vec_stream  deviation of the causal wav2vec2 (base size, random weights) from whole-file
#                         extraction per left context; its cost per 8-frame chunk (p50/p95/max ms)   ~0.5 min
#   bench_live            5 min from the voice on the real clock: latency table (features, brain, render,
#                         encode, first audio sample -> frames ready; target p95 <= 360 ms), sustained
#                         fps, and per-minute drift tables (live; synthetic-features control)         ~6 min
#   bench_synthesis       offline 60 s K=1 and K=3 incl. encode (target <= 3 s), streaming as fast as
#                         possible                                                                       ~1 min
set -uo pipefail
cd "$(dirname "$0")/.."
source benchmarks/stage_lib.sh
: "${BRAIN_CKPT:?set BRAIN_CKPT to a brain checkpoint.pth}"
: "${BODY_DIR:?set BODY_DIR to a body model directory}"
out_dir="${OUT_DIR:-gpu_logs}"
work="${WORK:-/tmp/diff_listener_gpu}/synth"
device="${DEVICE:-cuda}"
live_seconds="${LIVE_SECONDS:-300}" bin_seconds="${BIN_SECONDS:-60}"
wav2vec=(); if [ -n "${WAV2VEC:-}" ]; then wav2vec=(--wav2vec "$WAV2VEC"); fi
wav2vec_model=(); if [ -n "${WAV2VEC:-}" ]; then wav2vec_model=(--model "$WAV2VEC"); fi
# NO_LOOK_AHEAD=1: the live run's extractor emits each chunk at its own end (data_utils.wav2vec_stream)
look_ahead=(); if [ -n "${NO_LOOK_AHEAD:-}" ]; then look_ahead=(--no_look_ahead); fi
# LIVE_ATTITUDE: the attitude the live run asks for (a name, or speaker_clip: that of the speaker clip's listener)
# GT_CLIPS [24]: the ground-truth corpus the drift tables read against (24 clips hold ~6 of each attitude; the
# tenth session's 8 held 2 neutral ones, a reference too narrow for per-minute means: docs/BENCHMARKS.md)
attitude=(); if [ -n "${LIVE_ATTITUDE:-}" ]; then attitude=(--attitude "$LIVE_ATTITUDE"); fi
mkdir -p "$out_dir" "$work"

LOG_DIR="$out_dir" TAIL_LINES=45

# BENCHES [wav2vec live synthesis]: which of the three to run (each one's code unchanged since its last
# measurement can be left out to save a lent call's minutes).
benches=" ${BENCHES:-wav2vec live synthesis} "
status=0
if [[ "$benches" == *" wav2vec "* ]]; then
    run_logged bench_wav2vec_stream python3 benchmarks/bench_wav2vec_stream.py --device "$device" --seconds 60 \
        --deviation_seconds 30 --contexts 0 1 2 "${wav2vec_model[@]}" || status=1
fi
if [[ "$benches" == *" live "* ]]; then
    run_logged bench_live python3 benchmarks/bench_live.py --brain_checkpoint "$BRAIN_CKPT" \
        --body_checkpoint "$BODY_DIR" --device "$device" --seconds "$live_seconds" --bin_seconds "$bin_seconds" \
        --work "$work/live" --gt_clips "${GT_CLIPS:-24}" "${wav2vec[@]}" "${look_ahead[@]}" "${attitude[@]}" || status=1
fi
if [[ "$benches" == *" synthesis "* ]]; then
    run_logged bench_synthesis python3 benchmarks/bench_synthesis.py --brain_checkpoint "$BRAIN_CKPT" \
        --body_checkpoint "$BODY_DIR" --device "$device" --seconds 60 --realtime_seconds 0 \
        --work "$work/synthesis" || status=1
fi
exit "$status"
