"""ViCo-format fixture (CSV + videos/ + audios/ + EMOCA folders) -> a corpus that DyadicCorpus accepts."""
import json
import shutil

import numpy as np
import pytest
from scipy.io import wavfile

import data_utils.vico as vico
from brain.data import DyadicCorpus
from data_utils.vico import ATTITUDES, VicoError, VicoOptions, build_corpus, main, read_vico_index
from fixtures import save_tiny_wav2vec, write_vico_fixture
from utils.flame import AUDIO_DIM, FLAME_DIM, SPEAKER_EXP_DIM

CLIPS = [
    # written: 90 frames at 30 fps -> 75 at 25 fps; 3 listener frames without a face are interpolated
    dict(name="a", frames=90, data_split="train", listener_id="L1", speaker_id="S1", listener_missing=[10, 11, 40],
         attitude="positive"),
    dict(name="b", frames=75, data_split="train", listener_id="L2", speaker_id="S1", seed=2,  # -> 62 frames
         attitude="negative"),
    dict(name="c", frames=96, data_split="test", listener_id="L3", speaker_id="S2", seed=3),  # -> 80, neutral
    # refused: audio 1 s longer than the speaker video (sync check)
    dict(name="late_audio", frames=90, listener_id="L3", audio_seconds=4.0, seed=4),
    # refused: 25 fps videos
    dict(name="wrong_fps", frames=75, fps=25, listener_id="L4", seed=5),
    # refused: listener video 3 s but speaker video and audio 2 s
    dict(name="mismatch", frames=90, speaker_frames=60, listener_id="L5", seed=6),
    # refused: 20% of the listener's frames have no face in the EMOCA folder
    dict(name="gappy", frames=90, listener_missing=list(range(20, 38)), listener_id="L6", seed=7),
    # refused: an attitude the release does not have (line 9 of the CSV)
    dict(name="sceptic", frames=90, listener_id="L7", seed=8, attitude="sceptical"),
]
WRITTEN = {"a_listener": 75, "b_listener": 62, "c_listener": 80}
CSV = "RLD_data.csv"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    base = tmp_path_factory.mktemp("vico")
    write_vico_fixture(base / "vico", base / "emoca", CLIPS)
    model = save_tiny_wav2vec(base / "w2v")
    return base / "vico", base / "emoca", model


@pytest.fixture(scope="module")
def corpus(release, tmp_path_factory):
    root, emoca, model = release
    out = tmp_path_factory.mktemp("corpus") / "vico_corpus"
    manifest = build_corpus(root, emoca, model, out, device="cpu", progress=False)
    return out, manifest


def test_corpus_loads_with_resampled_lengths(corpus):
    out, manifest = corpus
    assert manifest["counts"] == {"written": 3, "skipped": 0, "refused": 5}
    loaded = DyadicCorpus(out)
    for clip_id, num_frames in WRITTEN.items():
        clip = loaded.load_clip(clip_id)
        assert clip.speaker_audio.shape == (num_frames, AUDIO_DIM)
        assert clip.speaker_exp.shape == (num_frames, SPEAKER_EXP_DIM)
        assert clip.listener.shape == (num_frames, FLAME_DIM)
        rate, samples = wavfile.read(clip.wav_path)
        assert rate == 16000 and samples.ndim == 1 and len(samples) == num_frames * 16000 // 25
    assert manifest["clips"]["a_listener"]["emoca"]["listener"]["missing_frames"] == 3


def test_refusals_name_the_reason(corpus):
    out, manifest = corpus
    reasons = {clip_id: entry.get("refused_because", "") for clip_id, entry in manifest["clips"].items()}
    assert "sync tolerance" in reasons["late_audio_listener"] and "late_audio_0_audio.wav" in reasons["late_audio_listener"]
    assert "25 fps, expected 30" in reasons["wrong_fps_listener"]
    assert "disagree in length" in reasons["mismatch_listener"]
    assert "gappy_listener" in reasons["gappy_listener"] and "have no face" in reasons["gappy_listener"]
    assert reasons["sceptic_listener"] == (f"{CSV}, line 9: attitude 'sceptical' is not one of "
                                           "positive, neutral, negative")
    assert not any((out / "clips" / clip_id).exists() for clip_id in reasons if reasons[clip_id])
    assert not list((out / "clips").glob("*.tmp-*"))  # no temporary leftovers


def test_official_split_with_val_carved_from_train(corpus):
    out, _ = corpus
    loaded = DyadicCorpus(out)
    splits = {name: loaded.split_ids(name) for name in ("train", "val", "test")}
    assert splits["test"] == ["c_listener"]
    assert sorted(splits["train"] + splits["val"]) == ["a_listener", "b_listener"] and len(splits["val"]) == 1


def test_rerun_skips_finished_clips_and_identity_split_is_disjoint(release, corpus):
    root, emoca, model = release
    out, _ = corpus
    stamps = {p: p.stat().st_mtime_ns for p in (out / "clips").rglob("*.npy")}
    manifest = build_corpus(root, emoca, model, out, VicoOptions(split="identity"), device="cpu", progress=False)
    assert manifest["counts"]["skipped"] == 3 and manifest["counts"]["written"] == 0
    assert stamps == {p: p.stat().st_mtime_ns for p in (out / "clips").rglob("*.npy")}
    clips = manifest["clips"]
    identities = {s: {clips[c]["listener_id"] for c in DyadicCorpus(out).split_ids(s)} for s in ("train", "val", "test")}
    assert all(identities[s] for s in identities)
    assert not (identities["train"] & identities["val"] or identities["train"] & identities["test"]
                or identities["val"] & identities["test"])
    with pytest.raises(VicoError, match="different settings.*max_gap_seconds"):
        build_corpus(root, emoca, model, out, VicoOptions(max_gap_seconds=1.0), device="cpu", progress=False)


def test_labels_follow_the_release_attitudes(corpus):
    out, _ = corpus
    meta = json.loads((out / "meta.json").read_text())
    assert meta["attitudes"] == list(ATTITUDES) == ["positive", "neutral", "negative"]
    labels = {clip_id: json.loads((out / "clips" / clip_id / "labels.json").read_text()) for clip_id in WRITTEN}
    assert labels == {"a_listener": {"attitude": "positive"}, "b_listener": {"attitude": "negative"},
                      "c_listener": {"attitude": "neutral"}}


def test_crash_half_way_through_a_clip_leaves_nothing_partial_and_a_rerun_completes(release, corpus, tmp_path,
                                                                                     monkeypatch):
    root, emoca, model = release
    out = tmp_path / "partial"
    lines = (root / CSV).read_text().splitlines()
    two_clips = tmp_path / "two.csv"  # the header and clips a, b
    two_clips.write_text("\n".join(lines[:3]) + "\n")
    in_progress = []

    def crashing_write_wav(path, samples, rate):  # clip b dies after its three arrays are on disk
        if "b_listener" in path.parent.name:
            in_progress.append(sorted(p.name for p in path.parent.iterdir()))
            raise KeyboardInterrupt
        original_write_wav(path, samples, rate)

    original_write_wav = vico.write_wav
    monkeypatch.setattr(vico, "write_wav", crashing_write_wav)
    with pytest.raises(KeyboardInterrupt):
        build_corpus(root, emoca, model, out, csv_path=two_clips, device="cpu", progress=False)
    assert in_progress == [["listener.npy", "speaker_audio.npy", "speaker_exp.npy"]]  # it did die mid-clip
    assert sorted(p.name for p in (out / "clips").iterdir()) == ["a_listener"]  # no half clip, no temporary
    assert not (out / "meta.json").exists() and not (out / "splits").exists()  # no corpus that looks usable

    monkeypatch.setattr(vico, "write_wav", original_write_wav)
    killed = out / "clips" / "b_listener.tmp-0badf00d"  # what a SIGKILL in the same place leaves
    killed.mkdir()
    np.save(killed / "listener.npy", np.zeros((3, FLAME_DIM), np.float32))
    manifest = build_corpus(root, emoca, model, out, csv_path=two_clips, device="cpu", progress=False)
    assert manifest["counts"] == {"written": 1, "skipped": 1, "refused": 0}
    assert sorted(p.name for p in (out / "clips").iterdir()) == ["a_listener", "b_listener"]
    resumed, reference = DyadicCorpus(out).load_clip("b_listener"), DyadicCorpus(corpus[0]).load_clip("b_listener")
    for name in ("speaker_audio", "speaker_exp", "listener"):  # the resumed clip is the one a clean run writes
        np.testing.assert_array_equal(getattr(resumed, name), getattr(reference, name))
    assert json.loads((out / "clips" / "b_listener" / "labels.json").read_text()) == {"attitude": "negative"}


def test_rerun_restores_labels_a_finished_clip_lacks(release, corpus, tmp_path):
    root, emoca, model = release
    out = tmp_path / "copy"
    shutil.copytree(corpus[0], out)
    (out / "clips" / "a_listener" / "labels.json").unlink()  # e.g. converted before labels were written
    manifest = build_corpus(root, emoca, model, out, device="cpu", progress=False)
    assert manifest["counts"]["skipped"] == 3 and manifest["counts"]["written"] == 0
    assert json.loads((out / "clips" / "a_listener" / "labels.json").read_text()) == {"attitude": "positive"}


def test_unusable_input_exits_nonzero(release, tmp_path, capsys):
    root, emoca, model = release
    assert main(["--root", str(tmp_path), "--emoca", str(emoca), "--wav2vec", str(model),
                 "--out", str(tmp_path / "out")]) == 2
    assert "no CSV" in capsys.readouterr().err
    only_bad = tmp_path / "only_bad"
    shutil.copytree(root / "videos", only_bad / "videos")
    shutil.copytree(root / "audios", only_bad / "audios")
    lines = (root / CSV).read_text().splitlines()
    (only_bad / CSV).write_text("\n".join([lines[0]] + [line for line in lines if "late_audio_listener" in line]) + "\n")
    assert main(["--root", str(only_bad), "--emoca", str(emoca), "--wav2vec", str(model),
                 "--out", str(tmp_path / "bad_out"), "--device", "cpu"]) == 2
    assert "every clip was refused" in capsys.readouterr().err
    assert not (tmp_path / "bad_out" / "meta.json").exists() and (tmp_path / "bad_out" / "manifest.json").is_file()
    (only_bad / CSV).write_text("listener,speaker\nx,y\n")
    with pytest.raises(VicoError, match=r"RLD_data\.csv|ViCo columns"):
        read_vico_index(only_bad)


def test_challenge_layout_with_per_split_csvs(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "train.csv").write_text("video_id,uuid,speaker_id,listener_id\nv1,abc,s1,l1\nv2,def,s2,l2\n")
    (tmp_path / "test.csv").write_text("video_id,uuid,speaker_id,listener_id\nv3,ghi,s1,l3\n")
    rows = {row.clip_id: row for row in read_vico_index(tmp_path)}
    assert sorted(rows) == ["abc", "def", "ghi"] and rows["ghi"].official_split == "test"
    assert rows["abc"].listener_video.name == "abc.listener.mp4" and rows["abc"].audio.name == "abc.wav"
    assert all(row.attitude is None for row in rows.values())  # no attitude column: an unlabelled corpus
