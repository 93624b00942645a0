#!/usr/bin/env bash
# Diff-Listener end to end on the built-in synthetic worlds, in one command:
#   bash scripts/demo.sh
# 1. sets up .venv (first run only, scripts/setup_env.sh);
# 2. writes the synthetic dyadic corpus (with speaker.wav) and the synthetic subject;
# 3. trains the brain (Stage 2) and the body (Stage 1): tiny presets on CPU (about 5 minutes in all),
#    the full presets when an NVIDIA GPU is present;
# 4. synthesises several listeners for a held-out test clip, with the speaker's audio, plus a
#    side-by-side grid, the motion (.npy) and a plot of the motion curves.
# Everything goes to output/demo/ (or $DEMO_OUT). Re-running skips every step whose output is complete;
# delete a step's folder to redo it. DEMO_PRESET=tiny|full overrides the automatic choice and
# DEMO_SAMPLES (default 3) sets how many listeners are drawn. DEMO_SKIP_SETUP=1 uses the current python
# as it is (a machine prepared by hand, e.g. with PYTHONPATH=. and no package registry).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${DEMO_SKIP_SETUP:-}" ]; then
    source "$repo_root/scripts/setup_env.sh"
fi
cd "$repo_root"

out="${DEMO_OUT:-output/demo}"
samples="${DEMO_SAMPLES:-3}"
if [ -z "${DEMO_PRESET:-}" ]; then
    if python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        DEMO_PRESET=full
    else
        DEMO_PRESET=tiny
    fi
fi
case "$DEMO_PRESET" in
    tiny)  # small enough for a laptop CPU: short clips, few steps, a small head image
        # Tiny models are per-op overhead: on a small or shared CPU extra threads contend more than they
        # help (measured ~2x faster training with one thread on a loaded 2-core machine).
        export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
        brain_config=configs/brain_tiny.yaml; body_config=configs/body_tiny.yaml
        corpus_args=(--clips 40 --seconds 12); subject_args=(--size 64 --frames 300) ;;
    full)
        brain_config=configs/brain_config.yaml; body_config=configs/body.yaml
        corpus_args=(--clips 200 --seconds 60); subject_args=(--size 512 --frames 4500 --device cuda) ;;
    *) echo "demo: DEMO_PRESET must be tiny or full, got '$DEMO_PRESET'" >&2; exit 2 ;;
esac
echo "[demo] preset: $DEMO_PRESET; output: $out"
demo_start=$SECONDS

# run_step NAME DONE_MARKER COMMAND...: run COMMAND unless DONE_MARKER exists, then create the marker.
# Markers (not the outputs themselves) decide, because training writes checkpoints before it is finished;
# an interrupted training step is continued from its last checkpoint.
run_step() {
    local name="$1" marker="$2"; shift 2
    if [ -e "$marker" ]; then
        echo "[demo] $name: done before, reusing ($marker)"
        return
    fi
    echo "[demo] $name ..."
    local start=$SECONDS
    "$@"
    mkdir -p "$(dirname "$marker")"
    touch "$marker"
    echo "[demo] $name: $((SECONDS - start)) s"
}

run_step "synthetic corpus" "$out/corpus/meta.json" \
    python -m data_utils.synthetic_dyadic --out "$out/corpus" "${corpus_args[@]}" --seed 0 --wav
run_step "synthetic subject" "$out/subject/meta.json" \
    python -m data_utils.synthetic_subject --out "$out/subject" "${subject_args[@]}"
# Continue an interrupted training run from its checkpoint instead of starting over.
brain_resume=(); if [ -f "$out/brain/checkpoint.pth" ]; then brain_resume=(--resume); fi
body_resume=(); if [ -f "$out/body/body.pth" ]; then body_resume=(--resume); fi
run_step "brain training ($brain_config)" "$out/brain/.demo_done" \
    python train_diffusion.py --config "$brain_config" --data "$out/corpus" --out "$out/brain" "${brain_resume[@]}"
run_step "body training ($body_config)" "$out/body/.demo_done" \
    python train_body.py -s "$out/subject" -m "$out/body" --config "$body_config" "${body_resume[@]}"

clip_id="$(head -n 1 "$out/corpus/splits/test.txt")"
clip_dir="$out/corpus/clips/$clip_id"
video="$out/videos/$clip_id.mp4"
if [ "$samples" -gt 1 ]; then first_video="$out/videos/${clip_id}_grid.mp4"; else first_video="$video"; fi
# synthesize_listener.py picks up speaker.wav beside the features by itself.
run_step "listener videos for test clip $clip_id" "$first_video" \
    python synthesize_listener.py --audio "$clip_dir/speaker_audio.npy" --visual "$clip_dir/speaker_exp.npy" \
        --body_checkpoint "$out/body" --brain_checkpoint "$out/brain/checkpoint.pth" \
        --output "$video" --num_samples "$samples" --seed 0

echo
echo "[demo] finished in $((SECONDS - demo_start)) s (preset $DEMO_PRESET)"
if [ -f "$clip_dir/speaker.wav" ]; then
    echo "[demo] the videos carry the speaker's audio ($clip_dir/speaker.wav)"
else
    echo "[demo] the corpus has no speaker.wav for $clip_id: the videos are silent"
fi
echo "[demo] videos:"
ls -1 "$out/videos/"*.mp4 | sed 's/^/    /'
echo "[demo] motion: $out/videos/$clip_id.npy   plot: $out/videos/$clip_id.png"
echo "[demo] speaker and real listener of that clip: $clip_dir/{speaker_exp,listener}.npy"
