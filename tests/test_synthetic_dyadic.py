"""The synthetic dyadic corpus: reproducible bytes, the §3.1 contract, exact resamples, and a world worth learning."""
import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from brain.data import DyadicCorpus
from data_utils import synthetic_semantics as sem
from data_utils.synthetic_dyadic import ATTITUDE_NAMES, main, write_synthetic_corpus
from utils.flame import FPS

SPEAKER_FILES = ("speaker_audio.npy", "speaker_exp.npy", "speaker.wav")


def _digest(root):
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_synthetic_corpus(tmp_path_factory.mktemp("dyadic") / "corpus", clips=5, seconds=30, seed=3)


@pytest.fixture(scope="module")
def reactions(tmp_path_factory):
    """A corpus large enough to measure reactions: 30 clips of 20 s (10 of each attitude on average)."""
    return write_synthetic_corpus(tmp_path_factory.mktemp("reactions") / "corpus", clips=30, seconds=20, seed=1)


def _clips(root):
    reader = DyadicCorpus(root)
    for clip_id in (i for split in ("train", "val", "test") for i in reader.split_ids(split)):
        clip_dir = root / "clips" / clip_id
        yield (reader.load_clip(clip_id), json.loads((clip_dir / "events.json").read_text()),
               json.loads((clip_dir / "labels.json").read_text())["attitude"])


def test_same_seed_same_bytes_different_seed_differs(tmp_path, corpus):
    again = write_synthetic_corpus(tmp_path / "again", clips=5, seconds=30, seed=3)
    other = write_synthetic_corpus(tmp_path / "other", clips=5, seconds=30, seed=4)
    assert _digest(again) == _digest(corpus)
    assert _digest(other) != _digest(corpus)
    itself = write_synthetic_corpus(tmp_path / "itself", clips=5, seconds=30, seed=3, resample_seed=0)
    assert _digest(itself) == _digest(corpus)  # resample 0 is the corpus itself


def test_corpus_passes_the_contract_reader(corpus):
    reader = DyadicCorpus(corpus)
    assert reader.meta["attitudes"] == list(ATTITUDE_NAMES)
    ids = [i for split in ("train", "val", "test") for i in reader.split_ids(split)]
    assert sorted(ids) == [f"clip_{i:04d}" for i in range(5)]  # every clip in exactly one split
    for clip_id in ids:
        clip = reader.load_clip(clip_id, min_frames=30 * FPS)
        assert clip.speaker_audio.shape == (30 * FPS, 768) and clip.listener.shape == (30 * FPS, 56)
        assert (clip.listener.std(0) > 1e-3).all(), "every FLAME dim should move, like real EMOCA codes"
        labels = json.loads((corpus / "clips" / clip_id / "labels.json").read_text())
        assert set(labels) == {"attitude"} and labels["attitude"] in ATTITUDE_NAMES


def test_resample_keeps_speakers_and_attitudes_bit_identical_and_redraws_listeners(tmp_path):
    kwargs = dict(clips=12, seconds=8, seed=2, wav=True)
    original = write_synthetic_corpus(tmp_path / "original", **kwargs)
    resample = write_synthetic_corpus(tmp_path / "resample", resample_seed=1, **kwargs)
    for split in ("train", "val", "test"):
        assert (original / "splits" / f"{split}.txt").read_bytes() == (resample / "splits" / f"{split}.txt").read_bytes()
    assert (original / "meta.json").read_bytes() == (resample / "meta.json").read_bytes()
    attitudes = set()
    for clip_dir in sorted((original / "clips").iterdir()):
        redrawn = resample / "clips" / clip_dir.name
        for name in SPEAKER_FILES + ("labels.json",):
            assert (clip_dir / name).read_bytes() == (redrawn / name).read_bytes(), (clip_dir.name, name)
        first, second = np.load(clip_dir / "listener.npy"), np.load(redrawn / "listener.npy")
        assert first.shape == second.shape and np.abs(first - second).mean() > 0.01, clip_dir.name
        events, redrawn_events = (json.loads((d / "events.json").read_text()) for d in (clip_dir, redrawn))
        assert events["speaker_pause_onsets"] == redrawn_events["speaker_pause_onsets"]
        assert events["speaker_smile_onsets"] == redrawn_events["speaker_smile_onsets"]
        attitudes.add(json.loads((clip_dir / "labels.json").read_text())["attitude"])
    assert attitudes == set(ATTITUDE_NAMES)  # 12 clips hold every attitude (so "kept" is not trivially true)


def _window_peak(curve, onsets, start, stop):
    """Per onset (seconds), the peak of ``curve`` from ``start`` to ``stop`` seconds after it."""
    return [curve[int((t + start) * FPS):int((t + stop) * FPS)].max() for t in onsets
            if (t + stop) * FPS <= len(curve)]


def test_nods_follow_pauses_more_than_random_onsets(reactions):
    """The control: the same statistic at as many random times per clip. A world whose nods came at random
    times (or whose pause onsets were wrong) would score the same for both."""
    rng = np.random.default_rng(0)
    after_pause, after_random = [], []
    for clip, events, _ in _clips(reactions):
        pitch = clip.listener[:, sem.HEAD_PITCH] - np.median(clip.listener[:, sem.HEAD_PITCH])
        onsets = events["speaker_pause_onsets"]
        after_pause += _window_peak(pitch, onsets, 0.15, 1.2)
        after_random += _window_peak(pitch, rng.uniform(0, clip.num_frames / FPS - 1.2, len(onsets)), 0.15, 1.2)
    assert len(after_pause) > 50
    assert np.mean(after_pause) > 1.8 * np.mean(after_random), (np.mean(after_pause), np.mean(after_random))


def test_smiles_follow_speaker_smiles_more_than_random_onsets(reactions):
    rng = np.random.default_rng(0)
    after_smile, after_random = [], []
    for clip, events, _ in _clips(reactions):
        smile = clip.listener[:, sem.SMILE]
        onsets = events["speaker_smile_onsets"]
        after_smile += _window_peak(smile, onsets, 0.5, 2.0)
        after_random += _window_peak(smile, rng.uniform(0, clip.num_frames / FPS - 2.0, len(onsets)), 0.5, 2.0)
    assert len(after_smile) > 20
    assert np.mean(after_smile) > np.mean(after_random) + 0.15, (np.mean(after_smile), np.mean(after_random))


def test_attitudes_behave_as_documented(reactions):
    """Positive smiles and nods most; negative frowns and shakes its head; neutral is in between and sparse."""
    stats = {name: {"smile": [], "brow": [], "nods": [], "shake_energy": []} for name in ATTITUDE_NAMES}
    for clip, events, attitude in _clips(reactions):
        listener = clip.listener
        stats[attitude]["smile"].append(listener[:, sem.SMILE].mean())
        stats[attitude]["brow"].append(listener[:, sem.BROW_RAISE].mean())
        stats[attitude]["nods"].append(len(events["listener_nods"]) / (clip.num_frames / FPS))
        stats[attitude]["shake_energy"].append(np.abs(np.diff(listener[:, sem.HEAD_YAW])).mean())
    mean = {name: {key: np.mean(values) for key, values in s.items()} for name, s in stats.items()}
    assert mean["positive"]["smile"] > mean["neutral"]["smile"] > mean["negative"]["smile"]
    assert mean["negative"]["brow"] < mean["neutral"]["brow"] - 0.1  # frowns
    assert mean["positive"]["nods"] > 1.5 * mean["neutral"]["nods"] > 1.5 * mean["negative"]["nods"]
    assert mean["negative"]["shake_energy"] > 1.5 * mean["positive"]["shake_energy"]


def test_cli_refuses_bad_arguments_without_output(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "c"), "--clips", "2", "--seconds", "5"]) == 2
    assert "at least 3" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "c"), "--clips", "3", "--seconds", "5", "--resample_seed", "-1"]) == 2
    assert "--resample_seed must be a non-negative integer" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    assert main(["--out", str(tmp_path / "c"), "--clips", "3", "--seconds", "3", "--wav"]) == 0
    assert (tmp_path / "c" / "clips" / "clip_0000" / "speaker.wav").is_file()


def _check_world_module():
    spec = importlib.util.spec_from_file_location("check_world", Path(__file__).parents[1] / "benchmarks" / "check_world.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_default_world_is_a_benchmark_at_a_small_size(tmp_path):
    """A regression guard for benchmarks/check_world.py's three properties (40 clips, 4 test clips, 2 resamples;
    the benchmark itself runs at 200 clips): the oracle beats every data baseline on FD exp and P-FD exp, a
    listener resampled for another speaker scores P-FD exp >= 2x the oracle's, and resampled listeners differ."""
    check_world = _check_world_module()
    corpus, resamples = check_world.write_world(tmp_path, clips=40, seconds=20, seed=0, resamples=2)
    results = check_world.score_world(corpus, resamples, corpus_seed=0, samples=2)
    failed = [(what, round(measured, 3)) for what, measured, _, holds in check_world.checks(results) if not holds]
    assert not failed, failed
