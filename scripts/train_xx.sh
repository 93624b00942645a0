#!/usr/bin/env bash
# Train one subject's body with the full schedule (configs/body.yaml) on one GPU, then score it on its
# validation frames (python -m scene.evaluate: <model>/eval/metrics.json and the worst frames) and render
# them as a check. Re-running continues from the last checkpoint.
#   bash scripts/train_xx.sh data/<ID> output/<project_name> <GPU_ID> [key=value ...]
#   bash scripts/train_xx.sh data/obama output/obama_body 0 train.max_minutes=20
set -euo pipefail
if [ "$#" -lt 3 ]; then
    echo "usage: bash scripts/train_xx.sh data/<ID> output/<project_name> <GPU_ID> [key=value ...]" >&2
    exit 2
fi
subject="$1"; model_dir="$2"; gpu="$3"; shift 3
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CUDA_VISIBLE_DEVICES="$gpu"
export PYTHONPATH="$repo_root${PYTHONPATH:+:$PYTHONPATH}"
resume=()
if [ -f "$model_dir/body.pth" ]; then
    resume=(--resume)
fi
python "$repo_root/train_body.py" -s "$subject" -m "$model_dir" --config "$repo_root/configs/body.yaml" \
    "${resume[@]}" "$@"
python -m scene.evaluate -m "$model_dir" -s "$subject" --out "$model_dir/eval"
# Render the validation frames' FLAME with the trained body next to the model (one PNG per frame).
python - "$subject" "$model_dir" <<'PY'
import sys
import numpy as np
from scene.subject import Subject
subject = Subject(sys.argv[1])
np.save(f"{sys.argv[2]}/val_flame.npy", subject.flame[subject.val_ids])
if subject.translation is not None:
    np.save(f"{sys.argv[2]}/val_translation.npy", subject.translation[subject.val_ids])
PY
translation=()
if [ -f "$model_dir/val_translation.npy" ]; then
    translation=(--translation "$model_dir/val_translation.npy")
fi
python -m scene.render -m "$model_dir" --flame "$model_dir/val_flame.npy" "${translation[@]}" \
    --out "$model_dir/val_render"
