#!/usr/bin/env bash
# Diff-Listener end to end on the built-in synthetic worlds, in one command:
#   bash scripts/demo.sh
# 1. sets up .venv (first run only, scripts/setup_env.sh);
# 2. writes the synthetic dyadic corpus (with speaker.wav) and the synthetic subject;
# 3. trains the brain (Stage 2) and the body (Stage 1): tiny presets on CPU (about 5 minutes in all),
#    the full presets when an NVIDIA GPU is present;
# 4. synthesises several listeners for a held-out test clip, with the speaker's audio, plus a
#    side-by-side grid, the motion (.npy) and a plot of the motion curves.
# Everything goes to output/demo/ (or $DEMO_OUT). Re-running skips every step whose output is complete
# and was made from the same inputs (settings, configs, upstream outputs); a step whose inputs changed is
# redone. Delete a step's folder to redo it anyway. DEMO_PRESET=tiny|full overrides the automatic choice and
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

# run_step NAME DIR KEY COMMAND...: DIR holds the step's output and KEY names its inputs (settings and the
# checksums of the files it reads). The key is recorded in DIR/.demo_inputs when the step starts and
# DIR/.demo_done is created when it finishes. Same key and done: reused. Same key, not done: run again (an
# interrupted training continues from its checkpoint). Another key, or a DIR of unknown origin: DIR is
# removed and the step redone, so e.g. DEMO_SAMPLES=5 after a 3-sample run draws 5 listeners.
run_step() {
    local name="$1" dir="$2" key="$3"; shift 3
    if [ -f "$dir/.demo_inputs" ] && [ "$(cat "$dir/.demo_inputs")" = "$key" ]; then
        if [ -e "$dir/.demo_done" ]; then
            echo "[demo] $name: done before with the same inputs, reusing ($dir)"
            return
        fi
    elif [ -e "$dir" ]; then
        echo "[demo] $name: $dir was made from other inputs; redoing it"
        rm -rf "$dir"
    fi
    echo "[demo] $name ..."
    local start=$SECONDS
    mkdir -p "$dir"
    printf '%s\n' "$key" > "$dir/.demo_inputs"
    "$@"
    printf '%s\n' "$key" > "$dir/.demo_inputs"  # again: a step may have replaced DIR as a whole
    touch "$dir/.demo_done"
    echo "[demo] $name: $((SECONDS - start)) s"
}
checksum() { cksum "$@" | awk '{print $1 "-" $2}' | tr '\n' ' '; }

corpus_key="corpus ${corpus_args[*]} seed 0 wav $(checksum data_utils/synthetic_dyadic.py)"
subject_key="subject ${subject_args[*]} $(checksum data_utils/synthetic_subject.py)"
run_step "synthetic corpus" "$out/corpus" "$corpus_key" \
    python -m data_utils.synthetic_dyadic --out "$out/corpus" "${corpus_args[@]}" --seed 0 --wav
run_step "synthetic subject" "$out/subject" "$subject_key" \
    python -m data_utils.synthetic_subject --out "$out/subject" "${subject_args[@]}"
# An interrupted training run (same inputs, not done) continues from its checkpoint instead of starting over.
train_brain() {
    local resume=(); if [ -f "$out/brain/checkpoint.pth" ]; then resume=(--resume); fi
    python train_diffusion.py --config "$brain_config" --data "$out/corpus" --out "$out/brain" "${resume[@]}"
}
train_body() {
    local resume=(); if [ -f "$out/body/body.pth" ]; then resume=(--resume); fi
    python train_body.py -s "$out/subject" -m "$out/body" --config "$body_config" "${resume[@]}"
}
run_step "brain training ($brain_config)" "$out/brain" "brain $(checksum "$brain_config") on $corpus_key" train_brain
run_step "body training ($body_config)" "$out/body" "body $(checksum "$body_config") on $subject_key" train_body

clip_id="$(head -n 1 "$out/corpus/splits/test.txt")"
clip_dir="$out/corpus/clips/$clip_id"
video="$out/videos/$clip_id.mp4"
videos_key="videos of $clip_id: samples $samples seed 0 brain $(checksum "$out/brain/checkpoint.pth") body $(checksum "$out/body/body.pth")"
# synthesize_listener.py picks up speaker.wav beside the features by itself.
run_step "listener videos for test clip $clip_id" "$out/videos" "$videos_key" \
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
