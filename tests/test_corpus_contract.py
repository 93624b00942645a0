"""The dyadic corpus contract (DESIGN.md §3.1): good clips load, broken ones are refused by name."""
import json

import numpy as np
import pytest

from brain.data import CorpusError, DyadicCorpus, check_speaker_inputs, write_corpus_meta


def _write_clip(root, clip_id, frames=40, audio_frames=None, exp_width=50, nan=False):
    rng = np.random.default_rng(0)
    clip = root / "clips" / clip_id
    clip.mkdir(parents=True)
    audio = rng.standard_normal((audio_frames or frames, 768)).astype(np.float32)
    exp = rng.standard_normal((frames, exp_width)).astype(np.float32)
    listener = rng.standard_normal((frames, 56)).astype(np.float32)
    if nan:
        listener[5, 3] = np.nan
    np.save(clip / "speaker_audio.npy", audio)
    np.save(clip / "speaker_exp.npy", exp)
    np.save(clip / "listener.npy", listener)


@pytest.fixture
def corpus_root(tmp_path):
    write_corpus_meta(tmp_path)
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train.txt").write_text("good\nshort\nmismatch\nwide\nnan\n")
    _write_clip(tmp_path, "good")
    _write_clip(tmp_path, "short", frames=10)
    _write_clip(tmp_path, "mismatch", audio_frames=39)
    _write_clip(tmp_path, "wide", exp_width=52)
    _write_clip(tmp_path, "nan", nan=True)
    return tmp_path


def test_good_clip_loads(corpus_root):
    corpus = DyadicCorpus(corpus_root)
    clip = corpus.load_clip("good", min_frames=32)
    assert clip.speaker_audio.shape == (40, 768) and clip.listener.dtype == np.float32
    assert corpus.split_ids("train")[0] == "good"


@pytest.mark.parametrize("clip_id, message", [
    ("short", r"clip short: 10 frames, shorter than the 32"),
    ("mismatch", r"clip mismatch: length mismatch: speaker_audio.npy has 39"),
    ("wide", r"clip wide, speaker_exp.npy: expected shape \[T,50\], got \[40, 52\]"),
    ("nan", r"clip nan, listener.npy: 1 NaN/Inf values in 1 frame\(s\), first at frame 5"),
    ("absent", r"clip absent: missing folder"),
])
def test_broken_clips_are_refused_by_name(corpus_root, clip_id, message):
    with pytest.raises(CorpusError, match=message):
        DyadicCorpus(corpus_root).load_clip(clip_id, min_frames=32)


def test_meta_and_splits_are_checked(corpus_root):
    meta = json.loads((corpus_root / "meta.json").read_text())
    (corpus_root / "meta.json").write_text(json.dumps({**meta, "fps": 30}))
    with pytest.raises(CorpusError, match="fps is 30, the contract requires 25"):
        DyadicCorpus(corpus_root)
    (corpus_root / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CorpusError, match="missing split file splits/val.txt"):
        DyadicCorpus(corpus_root).split_ids("val")


def test_speaker_inputs_must_agree():
    audio = np.zeros((20, 768), np.float32)
    with pytest.raises(CorpusError, match="audio has 20 frames but speaker_exp has 19"):
        check_speaker_inputs(audio, np.zeros((19, 50), np.float32))
