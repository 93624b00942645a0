#!/usr/bin/env bash
# Checks train_diffusion.py under torchrun (DDP) on N GPUs of one host: training runs on cuda:LOCAL_RANK,
# rank 0 alone writes the checkpoint and logs (every scalar of every step once), validation loss falls, and
# --resume continues the step count. The CPU version of these checks (gloo, 2 processes, with a crash between
# checkpoints and exact weights) is tests/test_brain_ddp.py.
#   PYTHONPATH=. bash benchmarks/ddp_check.sh [N=2] [work_dir]
# A CPU smoke run of the script itself (gloo, tiny model, ~1.5 min on 2 cores; 120 tiny steps only lower the
# validation loss by ~30%, hence VAL_RATIO):
#   DEVICE=cpu PRESET=configs/brain_tiny.yaml CLIPS=6 CLIP_SECONDS=8 STEPS=40 BATCH=16 VAL_RATIO=0.9 \
#       PYTHONPATH=. bash benchmarks/ddp_check.sh 2
set -euo pipefail
n="${1:-2}"
work="${2:-$(mktemp -d)}"
device="${DEVICE:-cuda}"
steps="${STEPS:-200}"  # per phase: train 2 x steps, resume to 3 x steps
export PYTHONPATH="${PYTHONPATH:-.}"
python -m data_utils.synthetic_dyadic --out "$work/corpus" --clips "${CLIPS:-40}" --seconds "${CLIP_SECONDS:-30}" --seed 0
common=(--config "${PRESET:-configs/brain_config.yaml}" --data "$work/corpus" --out "$work/run" train.device="$device"
        train.batch_size="${BATCH:-128}" train.warmup_steps=$((steps / 2)) train.val_every="$steps"
        train.checkpoint_every="$steps" train.log_every=$((steps / 4)))
torchrun --standalone --nproc_per_node "$n" train_diffusion.py "${common[@]}" train.max_steps=$((2 * steps)) \
    | tee "$work/first.log"
expected_device=$([ "$device" = cpu ] && echo cpu || echo cuda:0)
grep -q "device $expected_device, $n process(es)" "$work/first.log" \
    || { echo "rank 0 is not on $expected_device with $n processes"; exit 1; }
torchrun --standalone --nproc_per_node "$n" train_diffusion.py "${common[@]}" train.max_steps=$((3 * steps)) --resume
python - "$work/run" $((3 * steps)) "${VAL_RATIO:-0.5}" <<'PY'
import csv
import sys
from pathlib import Path

from utils.checkpoint import load_checkpoint
from utils.logger import read_scalars

run = Path(sys.argv[1])
payload = load_checkpoint(run / "checkpoint.pth", kind="brain")
val = read_scalars(run / "scalars.csv")["val_x0"]
steps = [step for step, _ in read_scalars(run / "scalars.csv")["loss"]]
print(f"checkpoint step {payload['step']}; val_x0 {val[0][1]:.4f} (step {val[0][0]}) -> {val[-1][1]:.4f} (step {val[-1][0]})")
assert payload["step"] == int(sys.argv[2]), payload["step"]
assert steps == sorted(set(steps)), "rank 0 alone should log, each step once"
with open(run / "scalars.csv", newline="") as handle:
    rows = [(row["step"], row["name"]) for row in csv.DictReader(handle)]
assert len(rows) == len(set(rows)), "every scalar of every step should appear once"
assert val[-1][1] < float(sys.argv[3]) * val[0][1], f"validation loss should fall below {sys.argv[3]} x its start"
print("DDP check passed")
PY
