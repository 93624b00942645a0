#!/usr/bin/env bash
# The body's GPU stage (issue 14), in phases so a lent machine's short calls can run it
# (benchmarks/gpu_session.sh calls these; the session runs the gpu-marked tests and builds gsplat first):
#
#   bash benchmarks/gpu_stage_body.sh subject    # the harder 512x512 synthetic subject, 4,500 frames (~1 min)
#   bash benchmarks/gpu_stage_body.sh train      # configs/body.yaml on it in the background: 4.5 min on the clock
#                                                # (time schedule), validated and saved inside the budget; a
#                                                # `timeout` backstop kills it at 6 min (the last checkpoint stays)
#   bash benchmarks/gpu_stage_body.sh wait       # until the training is done
#   bash benchmarks/gpu_stage_body.sh evaluate   # waits for the training; python -m scene.evaluate on every
#                                                # validation frame (metrics.json, worst-frames contact sheet)
#   bash benchmarks/gpu_stage_body.sh bench      # render speed at batch 1/4/16, two-pass and fast path, and one
#                                                # table of every figure -> $OUT_DIR/body_table.md
#
# Environment: WORK (scratch: subject, model), OUT_DIR (logs, metrics, contact sheet, table), SUBJECT_FRAMES
# [4500], TRAIN_MINUTES [empty: the config's 4.5] (a shorter subject and clock make a stand-in body of the shipped
# size for speed measurements on a machine where the real one was not trained), TINY=1 (every
# phase at CPU size: a 48x48 subject, the tiny preset, a few steps; ~4 min). The training runs alone on the GPU
# when its 5-minute target is what is measured: start it when nothing else trains.
set -uo pipefail
cd "$(dirname "$0")/.."
source benchmarks/stage_lib.sh
work="${WORK:?set WORK to a scratch folder}"
out="${OUT_DIR:?set OUT_DIR to a folder for logs and results}"
mkdir -p "$work" "$out"
python="${PYTHON:-python3}"
status=0

if [ -n "${TINY:-}" ]; then
    subject_args=(--frames 60 --size 48 --device cpu --workers 2)
    train_args=(--config configs/body_tiny.yaml train.max_steps=6 train.val_every=3 train.save_every=3
                train.max_minutes=2 train.time_schedule=true model.init.face_count=300 model.init.mouth_count=30)
    bench_args=(--batch 1 4 16)
    cap=600
else
    subject_args=(--frames "${SUBJECT_FRAMES:-4500}" --size 512 --device cuda --workers 16)
    train_args=(--config configs/body.yaml ${TRAIN_MINUTES:+train.max_minutes=$TRAIN_MINUTES})
    bench_args=(--batch 1 4 16 --iters 300)
    cap=360
fi
subject="$work/body_subject"
model="$work/body_model"

LOG_DIR="$out"
step() {  # step <name> <command...>: run_logged as body_<name>; a failure is remembered, the stage goes on
    local name="$1"; shift
    run_logged "body_$name" "$@" || status=1
}

phase_subject() {
    rm -rf "$subject"
    step subject $python -m data_utils.synthetic_subject --out "$subject" "${subject_args[@]}"
}

phase_train() {
    rm -rf "$model" "$work/body_train.done"
    : > "$out/body_train.log"  # before the background start: `wait` reads its presence as "train ran here"
    # A session of its own: the training outlives the call that starts it (nothing is started after it returns).
    setsid bash -c "timeout --signal=KILL $cap $python train_body.py -s '$subject' -m '$model' ${train_args[*]} \
        > '$out/body_train.log' 2>&1; echo \$? > '$work/body_train.done'" > /dev/null 2>&1 < /dev/null &
    echo "=== body train: started in the background (log $out/body_train.log)"
}

phase_wait() {
    if [ ! -f "$out/body_train.log" ]; then  # a bare machine: `train` never ran here
        echo "=== body: no training on this machine ($out/body_train.log missing): run subject and train first"
        exit 1
    fi
    while [ ! -f "$work/body_train.done" ]; do sleep 5; done
    echo "=== body train: exit $(cat "$work/body_train.done")"; tail -n 15 "$out/body_train.log"
}

phase_evaluate() {
    phase_wait
    step evaluate $python -m scene.evaluate -m "$model" -s "$subject" --out "$out/body_eval"
    cp "$model/summary.json" "$out/body_summary.json" 2>/dev/null
    cp "$model/val_preview.png" "$out/body_val_preview.png" 2>/dev/null
}

phase_bench() {
    step bench $python benchmarks/bench_body.py --model "$model" --json "$out/body_bench.json" "${bench_args[@]}"
    echo "=== body figures (contact sheet: $out/body_eval/worst_frames.png)"
    $python benchmarks/body_stage_table.py --model "$model" --eval "$out/body_eval" --bench "$out/body_bench.json" \
        --out "$out/body_table.md" || status=1
}

for phase in "$@"; do
    "phase_$phase"
done
exit "$status"
