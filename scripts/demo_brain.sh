#!/usr/bin/env bash
# The brain end to end on the built-in synthetic world: corpus -> brain_tiny training -> samples -> plots.
#   bash scripts/demo_brain.sh [output_dir]        (default: output/demo_brain)
# Re-running reuses the corpus and the trained checkpoint it finds in output_dir.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo_root/scripts/setup_env.sh"
cd "$repo_root"
out="${1:-output/demo_brain}"
corpus="$out/corpus"
run="$out/brain_tiny"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # tiny models: one thread beats two on a busy small CPU

if [ ! -f "$corpus/meta.json" ]; then
    python -m data_utils.synthetic_dyadic --out "$corpus" --clips 20 --seconds 30 --seed 0 --wav
fi
if [ ! -f "$run/checkpoint.pth" ]; then
    python train_diffusion.py --config configs/brain_tiny.yaml --data "$corpus" --out "$run"
fi
clip="$corpus/clips/$(head -n 1 "$corpus/splits/test.txt")"
python -m brain.sample --checkpoint "$run/checkpoint.pth" --audio "$clip/speaker_audio.npy" \
    --visual "$clip/speaker_exp.npy" --out "$out/listener_samples.npy" --num_samples 3 --seed 0
python - "$out" "$clip" <<'PY'
import sys
from pathlib import Path

import numpy as np

from utils.plots import plot_motion_curves, plot_std_bars

out, clip = Path(sys.argv[1]), Path(sys.argv[2])
samples = np.load(out / "listener_samples.npy")  # [3,T,56]
truth = np.load(clip / "listener.npy")
speaker_exp = np.load(clip / "speaker_exp.npy")
curves = {"recorded listener": truth, **{f"brain sample {k}": s for k, s in enumerate(samples)}}
plot_motion_curves(out / "motion_curves.png", curves, speaker_exp=speaker_exp,
                   title=f"{clip.name}: the recorded listener and three brain samples")
plot_std_bars(out / "motion_std.png", {"recorded": truth.std(0), "brain": samples.reshape(-1, 56).std(0)},
              title="per-dimension std: recorded vs generated")
PY
echo "demo outputs in $out:"
echo "  listener_samples.npy  [3,T,56] listener FLAME for test clip $(basename "$clip")"
echo "  motion_curves.png     recorded vs generated curves, speaker expression on top"
echo "  motion_std.png        per-dimension std (amplitude check)"
echo "  brain_tiny/           checkpoint.pth, scalars.csv, config.yaml"
