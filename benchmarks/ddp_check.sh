#!/usr/bin/env bash
# Checks train_diffusion.py under torchrun (DDP) on N GPUs of one host: training runs, rank 0 alone writes
# the checkpoint and logs, validation loss falls, and --resume continues the step count.
#   PYTHONPATH=. bash benchmarks/ddp_check.sh [N=2] [work_dir]
set -euo pipefail
n="${1:-2}"
work="${2:-$(mktemp -d)}"
export PYTHONPATH="${PYTHONPATH:-.}"
python -m data_utils.synthetic_dyadic --out "$work/corpus" --clips 40 --seconds 30 --seed 0
common=(--config configs/brain_config.yaml --data "$work/corpus" --out "$work/run"
        train.batch_size=128 train.warmup_steps=100 train.val_every=200 train.checkpoint_every=200 train.log_every=50)
torchrun --standalone --nproc_per_node "$n" train_diffusion.py "${common[@]}" train.max_steps=400
torchrun --standalone --nproc_per_node "$n" train_diffusion.py "${common[@]}" train.max_steps=600 --resume
python - "$work/run" <<'PY'
import sys
from pathlib import Path

from utils.checkpoint import load_checkpoint
from utils.logger import read_scalars

run = Path(sys.argv[1])
payload = load_checkpoint(run / "checkpoint.pth", kind="brain")
val = read_scalars(run / "scalars.csv")["val_x0"]
steps = [step for step, _ in read_scalars(run / "scalars.csv")["loss"]]
print(f"checkpoint step {payload['step']}; val_x0 {val[0][1]:.4f} (step {val[0][0]}) -> {val[-1][1]:.4f} (step {val[-1][0]})")
assert payload["step"] == 600, payload["step"]
assert steps == sorted(set(steps)), "rank 0 alone should log, each step once"
assert val[-1][1] < 0.5 * val[0][1], "validation loss should fall clearly"
print("DDP check passed")
PY
