"""The synthetic dyadic corpus: reproducible bytes, the §3.1 contract, and a world worth learning."""
import hashlib
import json

import numpy as np
import pytest

from brain.data import DyadicCorpus
from data_utils import synthetic_semantics as sem
from data_utils.synthetic_dyadic import main, write_synthetic_corpus
from utils.flame import FPS


def _digest(root):
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_synthetic_corpus(tmp_path_factory.mktemp("dyadic") / "corpus", clips=5, seconds=30, seed=3)


def test_same_seed_same_bytes_different_seed_differs(tmp_path, corpus):
    again = write_synthetic_corpus(tmp_path / "again", clips=5, seconds=30, seed=3)
    other = write_synthetic_corpus(tmp_path / "other", clips=5, seconds=30, seed=4)
    assert _digest(again) == _digest(corpus)
    assert _digest(other) != _digest(corpus)


def test_corpus_passes_the_contract_reader(corpus):
    reader = DyadicCorpus(corpus)
    ids = [i for split in ("train", "val", "test") for i in reader.split_ids(split)]
    assert sorted(ids) == [f"clip_{i:04d}" for i in range(5)]  # every clip in exactly one split
    for clip_id in ids:
        clip = reader.load_clip(clip_id, min_frames=30 * FPS)
        assert clip.speaker_audio.shape == (30 * FPS, 768) and clip.listener.shape == (30 * FPS, 56)
        assert (clip.listener.std(0) > 1e-3).all(), "every FLAME dim should move, like real EMOCA codes"


def test_listener_reacts_to_the_speaker(corpus):
    """Pause onsets are followed by nods more than chance; speaker smiles by listener smiles."""
    reader = DyadicCorpus(corpus)
    after_pause, after_smile, overall_pitch, overall_smile = [], [], [], []
    for clip_id in reader.split_ids("train"):
        clip = reader.load_clip(clip_id)
        events = json.loads((corpus / "clips" / clip_id / "events.json").read_text())
        pitch, smile = clip.listener[:, sem.HEAD_PITCH], clip.listener[:, sem.SMILE]
        overall_pitch.append(pitch.mean())
        overall_smile.append(smile.mean())
        for onset in events["speaker_pause_onsets"]:
            after_pause.append(pitch[int((onset + 0.15) * FPS):int((onset + 1.2) * FPS)].max())
        for onset in events["speaker_smile_onsets"]:
            after_smile.append(smile[int((onset + 0.5) * FPS):int((onset + 2.0) * FPS)].mean())
    assert np.mean(after_pause) > np.mean(overall_pitch) + 0.03
    assert np.mean(after_smile) > 2 * np.mean(overall_smile)


def test_cli_refuses_bad_arguments_without_output(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "c"), "--clips", "2", "--seconds", "5"]) == 2
    assert "at least 3" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    assert main(["--out", str(tmp_path / "c"), "--clips", "3", "--seconds", "3", "--wav"]) == 0
    assert (tmp_path / "c" / "clips" / "clip_0000" / "speaker.wav").is_file()
