#!/usr/bin/env bash
# The body's GPU stage (issue 14), unattended, in order:
#   1. the body's gpu-marked tests (gsplat parity incl. the one-pass stacked render, the fast path against the
#      two-layer reference composite, CUDA-graph replay, a densifying training run, evaluation CUDA = CPU);
#   2. the harder 512x512 synthetic subject, 4,500 frames (3 minutes at 25 fps);
#   3. configs/body.yaml on it: 4.5 min of training on the clock (time schedule), validated and saved inside
#      the budget; a `timeout` backstop kills it at 6 min, leaving the last periodic checkpoint;
#   4. python -m scene.evaluate on all validation frames (metrics.json, the worst-frames contact sheet);
#   5. render speed at batch 1/4/16, old two-pass path and fast path (benchmarks/bench_body.py);
#   6. one table of every figure (val PSNR, worst decile, mouth PSNR, minutes, RAM, fps) -> $OUT_DIR/body_table.md.
# It builds nothing: the lead builds gsplat's CUDA extension first (its first use JIT-compiles ~50 s).
#
#   WORK=/tmp/work OUT_DIR=/tmp/out bash benchmarks/gpu_stage_body.sh      # GPU: ~7.5 min (see below)
#   TINY=1 WORK=/tmp/w OUT_DIR=/tmp/o bash benchmarks/gpu_stage_body.sh    # CPU check of every step, ~4 min
#
# Estimated GPU minutes on an H100/H200: tests ~1.2, subject ~0.8, training 4.5 + ~0.3 start-up, evaluation
# ~0.2, render benchmark ~0.4: about 7.5 minutes. Everything it writes goes under $WORK (data, model) and
# $OUT_DIR (logs, metrics.json, contact sheet, table).
set -uo pipefail
cd "$(dirname "$0")/.."
work="${WORK:?set WORK to a scratch folder}"
out="${OUT_DIR:?set OUT_DIR to a folder for logs and results}"
mkdir -p "$work" "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
status=0

step() {  # step <name> <command...>: run it, log it, keep going on failure (the table says what is missing)
    local name="$1"; shift
    echo "=== body $name: $*"
    local start=$SECONDS
    "$@" > "$out/body_$name.log" 2>&1
    local code=$?
    tail -n 25 "$out/body_$name.log"
    echo "=== body $name: exit $code after $((SECONDS - start)) s"
    [ "$code" -eq 0 ] || status=1
}

if [ -n "${TINY:-}" ]; then  # every step at CPU size: a 48x48 subject, the tiny preset, a few steps
    subject_args=(--frames 60 --size 48 --device cpu --workers 2)
    train_args=(--config configs/body_tiny.yaml train.max_steps=6 train.val_every=3 train.save_every=3
                train.max_minutes=2 train.time_schedule=true model.init.face_count=300 model.init.mouth_count=30)
    bench_args=(--batch 1 4 16)
    cap=600
else
    subject_args=(--frames 4500 --size 512 --device cuda --workers 16)
    train_args=(--config configs/body.yaml)
    bench_args=(--batch 1 4 16 --iters 300)
    cap=360
fi
subject="$work/body_subject"
model="$work/body_model"

step tests python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_body_gpu.py tests/test_gsplat_parity.py \
    tests/test_synthetic_subject.py
rm -rf "$subject" "$model"
step subject python3 -m data_utils.synthetic_subject --out "$subject" "${subject_args[@]}"
step train timeout --signal=KILL "$cap" python3 train_body.py -s "$subject" -m "$model" "${train_args[@]}"
step evaluate python3 -m scene.evaluate -m "$model" -s "$subject" --out "$out/body_eval"
step bench python3 benchmarks/bench_body.py --model "$model" --json "$out/body_bench.json" "${bench_args[@]}"
cp "$model/summary.json" "$out/body_summary.json" 2>/dev/null
cp "$model/val_preview.png" "$out/body_val_preview.png" 2>/dev/null
echo "=== body figures (contact sheet: $out/body_eval/worst_frames.png)"
python3 benchmarks/body_stage_table.py --model "$model" --eval "$out/body_eval" --bench "$out/body_bench.json" \
    --out "$out/body_table.md" || status=1
exit "$status"
