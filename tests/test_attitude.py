"""Reaction controls without training: the labels contract, the windows' attitude and intensity, the denoiser's
and the sampler's use of them, and the attitude classifier of the evaluation."""
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

import train_diffusion
from brain.attitude_eval import AttitudeClassifier, balanced_accuracy, confusion_matrix
from brain.conditions import ENERGY_LAG_FRAMES, NO_ATTITUDE, attitude_index, intensity_condition
from brain.config import BrainConfig, ModelConfig
from brain.data import CorpusError, DyadicCorpus, write_corpus_meta
from brain.dataset import WindowDataset, load_split_clips
from brain.diffusion import build_denoiser_and_diffusion
from brain.normalizer import Normalizer
from data_utils.synthetic_dyadic import ATTITUDE_NAMES, write_synthetic_corpus
from fixtures import remove_attitude_labels

ATTITUDES = list(ATTITUDE_NAMES)  # the synthetic world's: every clip of it is labelled
SMALL = ModelConfig(width=32, layers=2, heads=4, ff_mult=2, dropout=0.0, history_frames=10, window_frames=12,
                    chunk_frames=4, attitudes=list(ATTITUDES), intensity_frames=30)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_synthetic_corpus(tmp_path_factory.mktemp("attitude") / "corpus", clips=9, seconds=8, seed=0)


def _label(root, clip_id):
    return json.loads((root / "clips" / clip_id / "labels.json").read_text())["attitude"]




@pytest.fixture
def copy(corpus, tmp_path):
    """A scratch copy of the labelled corpus to break."""
    return shutil.copytree(corpus, tmp_path / "copy")


# ---------------------------------------------------------------- the contract


def test_labels_load_and_unlabelled_corpora_keep_working(corpus, copy):
    labelled = DyadicCorpus(corpus)
    assert labelled.attitudes == ATTITUDES
    labels = [labelled.load_clip(f"clip_000{i}").attitude for i in range(9)]
    assert labels == [_label(corpus, f"clip_000{i}") for i in range(9)] and set(labels) == set(ATTITUDES)
    plain = DyadicCorpus(remove_attitude_labels(copy))
    assert plain.attitudes == [] and plain.load_clip("clip_0000").attitude is None


@pytest.mark.parametrize("labels, message", [
    ('{"attitude": "bored"}', "clip clip_0001, labels.json: attitude 'bored' is not one of meta.json's attitudes "
                              r"\(positive, neutral, negative\)"),
    ('{"attitude": ', r"clip clip_0001, labels.json: invalid JSON in .*clip_0001/labels.json"),
    ('["positive"]', "clip clip_0001, labels.json: expected a JSON object"),
    ('{"mood": "positive"}', "clip clip_0001, labels.json: attitude None is not one of"),
    (None, r"clip clip_0001, labels.json: missing file .*clip_0001/labels.json; meta.json lists attitudes"),
])
def test_bad_labels_are_refused_naming_the_clip_and_file(copy, labels, message):
    path = copy / "clips" / "clip_0001" / "labels.json"
    if labels is None:
        path.unlink()
    else:
        path.write_text(labels)
    corpus = DyadicCorpus(copy)
    corpus.load_clip("clip_0000")  # the other clips still load
    with pytest.raises(CorpusError, match=message):
        corpus.load_clip("clip_0001")


def test_a_label_in_an_unlabelled_corpus_is_refused(copy):
    label = _label(copy, "clip_0002")
    with pytest.raises(CorpusError, match=f"clip clip_0002, labels.json: labels attitude '{label}', but .*meta.json "
                                          "lists no \"attitudes\""):
        write_corpus_meta(copy)  # the attitude list gone, the labels kept
        DyadicCorpus(copy).load_clip("clip_0002")


@pytest.mark.parametrize("names", [[], ["positive", "positive"], ["positive", 3], "sad"])  # "sad": no repeated letter
def test_a_bad_attitude_list_is_refused(copy, names):
    meta = json.loads((copy / "meta.json").read_text())
    (copy / "meta.json").write_text(json.dumps({**meta, "attitudes": names}))
    with pytest.raises(CorpusError, match="meta.json: \"attitudes\" must be a non-empty list of distinct names"):
        DyadicCorpus(copy)
    with pytest.raises(CorpusError, match="must be a non-empty list"):
        write_corpus_meta(copy / "other", attitudes=names)


def test_training_refuses_a_bad_label_with_exit_2(copy, tmp_path, capsys):
    (copy / "clips" / "clip_0003" / "labels.json").write_text('{"attitude": "sarcastic"}')
    code = train_diffusion.main(["--config", "configs/brain_tiny.yaml", "--data", str(copy), "--out",
                                 str(tmp_path / "run"), "train.max_steps=1"])
    assert code == 2 and "clip clip_0003, labels.json: attitude 'sarcastic'" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoint.pth").exists()


# ---------------------------------------------------------------- the training windows


@pytest.fixture(scope="module")
def dataset(corpus):
    clips = load_split_clips(DyadicCorpus(corpus), "train", SMALL)
    normalizer = Normalizer.fit([c.listener for c in clips], [c.speaker_exp for c in clips])
    return WindowDataset(clips, normalizer, SMALL, stride=1), clips, normalizer


def _energy_by_hand(listener: np.ndarray, first: int, stop: int) -> float:
    """RMS 5-frame displacement of the pairs (t, t+5) with t in [first, stop - 5), in float64."""
    pairs = listener[first + ENERGY_LAG_FRAMES:stop] - listener[first:stop - ENERGY_LAG_FRAMES]
    return float(np.sqrt((pairs.astype(np.float64) ** 2).mean()))


def test_windows_carry_the_clip_attitude_and_the_energy_around_them(dataset):
    windows, clips, normalizer = dataset
    w, span = SMALL.window_frames, SMALL.intensity_frames
    first_clip = clips[0]
    normalized = normalizer.normalize_listener(torch.from_numpy(first_clip.listener)).numpy()
    per_clip = first_clip.num_frames - w + 1
    energies = {}
    for start in (0, 3, 60, per_clip - 1):  # the clip's start and end cut the span
        centre = start + w // 2
        first, stop = max(0, centre - span // 2), min(first_clip.num_frames, centre - span // 2 + span)
        energies[start] = _energy_by_hand(normalized, first, stop)
    for index, clip in ((0, first_clip), (per_clip, clips[1])):  # the first window of the first two clips
        cond, _ = windows.gather(torch.tensor([index]))
        assert cond.attitude.tolist() == [ATTITUDES.index(clip.attitude)]
    for start, energy in energies.items():
        cond, _ = windows.gather(torch.tensor([start]))
        typical = float(windows.typical_energy[ATTITUDES.index(first_clip.attitude)])
        assert float(2 ** cond.intensity[0]) * typical == pytest.approx(energy, rel=1e-4), start
    # Intensity is relative to each attitude's median window: half its windows above, half below.
    for index in range(len(ATTITUDES)):
        assert abs(float((windows.intensity[windows.attitude == index] > 0).float().mean()) - 0.5) < 0.01


def test_an_unlabelled_model_gets_neither_condition(corpus, dataset):
    _, clips, normalizer = dataset
    plain = ModelConfig(**{**SMALL.__dict__, "attitudes": [], "intensity_frames": 0})
    cond, _ = WindowDataset(clips, normalizer, plain).gather(torch.tensor([0, 1]))
    assert cond.attitude is None and cond.intensity is None
    cfg = BrainConfig(data=str(corpus), model=ModelConfig(**{**SMALL.__dict__, "attitudes": [],
                                                             "use_attitude_labels": False}))
    train_diffusion.open_corpus(cfg)
    assert cfg.model.attitudes == []  # use_attitude_labels=false: trained blind to the labels
    cfg.model.use_attitude_labels = True
    train_diffusion.open_corpus(cfg)
    assert cfg.model.attitudes == ATTITUDES  # the default: the corpus's names, no flag needed


# ---------------------------------------------------------------- the denoiser and the sampler


def _modules(model_cfg=SMALL):
    torch.manual_seed(0)
    denoiser, diffusion = build_denoiser_and_diffusion(BrainConfig(model=model_cfg))
    for layer in (denoiser.out, denoiser.out_modulation, *[b.modulation for b in denoiser.blocks]):
        torch.nn.init.normal_(layer.weight, std=0.05)  # zero-initialised outputs would hide every input
    return denoiser.eval(), diffusion


def test_attitude_and_intensity_change_the_prediction_and_none_is_the_null(dataset):
    windows, _, _ = dataset
    denoiser, diffusion = _modules()
    cond, _ = windows.gather(torch.tensor([5, 6]))
    x, t = torch.randn(2, SMALL.window_frames, 56), torch.full((2,), 0.5)
    with torch.no_grad():
        def predict(**change):
            return diffusion.predict_x0(denoiser, x, t, replace(cond, **change))
        base = predict()
        other = predict(attitude=(cond.attitude + 1) % len(ATTITUDES))
        louder = predict(intensity=cond.intensity + 1)
        none = predict(attitude=torch.full((2,), NO_ATTITUDE))
        dropped = diffusion.predict_x0(denoiser, x, t, cond, drop_attitude=torch.ones(2, dtype=torch.bool))
        absent = predict(attitude=None)
    assert (base - other).abs().mean() > 1e-3 and (base - louder).abs().mean() > 1e-3
    torch.testing.assert_close(none, dropped)  # "no attitude" is the dropped-condition branch
    torch.testing.assert_close(none, absent)


def test_attitude_and_history_guidance_combine_as_documented(dataset):
    """Each guidance term scales the step from its dropped-condition branch to the full one, on top of the
    speaker's guidance; the branch order (∅, audio, both, no attitude, no history) is what the encoding and the
    combination agree on, and only the branches a term needs are run."""
    windows, _, _ = dataset
    denoiser, diffusion = _modules()
    cond, _ = windows.gather(torch.tensor([7, 8]))
    assert cond.history_valid.any(), "the windows need history for history guidance to act on"
    x, t, ones = torch.randn(2, SMALL.window_frames, 56), torch.full((2,), 0.5), torch.ones(2, dtype=torch.bool)
    with torch.no_grad():
        none = diffusion.predict_x0(denoiser, x, t, cond, drop_audio=ones, drop_speaker_exp=ones)
        audio = diffusion.predict_x0(denoiser, x, t, cond, drop_speaker_exp=ones)
        both = diffusion.predict_x0(denoiser, x, t, cond)
        blind = diffusion.predict_x0(denoiser, x, t, cond, drop_attitude=ones)
        forgetful = diffusion.predict_x0(denoiser, x, t, cond, drop_history=ones)

        def guided(*scales):
            branches = diffusion.guidance_branches(*scales)
            return diffusion.guided_x0(denoiser, x, 0.5, diffusion.encode_for_sampling(denoiser, cond, branches),
                                       *scales)

        speaker_and_attitude, every_term = guided(2.0, 3.0, 1.5), guided(2.0, 3.0, 1.5, 2.5)
        attitude_only, no_attitude = guided(1.0, 1.0, 2.5), guided(1.0, 1.0, 0.0)
        history_only, no_history = guided(1.0, 1.0, 1.0, 2.5), guided(1.0, 1.0, 1.0, 0.0)
        with pytest.raises(ValueError, match="encoded for 1 branches, these guidance scales need 2"):
            diffusion.guided_x0(denoiser, x, 0.5, diffusion.encode_for_sampling(
                denoiser, cond, diffusion.guidance_branches(1.0, 1.0)), 1.0, 1.0, 1.0, 2.5)
    assert (forgetful - both).abs().mean() > 1e-3 and (blind - both).abs().mean() > 1e-3
    counts = [diffusion.guidance_branches(*scales).count for scales in
              [(1.0, 1.0, 1.0), (2.0, 2.0, 1.0), (1.0, 1.0, 2.5), (1.0, 1.0, 1.0, 2.5), (2.0, 3.0, 1.5),
               (2.0, 3.0, 1.5, 2.5)]]
    assert counts == [1, 3, 2, 2, 4, 5]
    speaker = none + 2.0 * (audio - none) + 3.0 * (both - audio)
    torch.testing.assert_close(speaker_and_attitude, speaker + 0.5 * (both - blind), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(every_term, speaker + 0.5 * (both - blind) + 1.5 * (both - forgetful),
                               atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(attitude_only, both + 1.5 * (both - blind), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(no_attitude, blind, atol=1e-5, rtol=1e-4)  # g_attitude = 0: as if none asked
    torch.testing.assert_close(history_only, both + 1.5 * (both - forgetful), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(no_history, forgetful, atol=1e-5, rtol=1e-4)  # g_history = 0: as if no history


def test_reaction_arguments_are_checked():
    assert attitude_index(ATTITUDES, None) == NO_ATTITUDE and attitude_index(ATTITUDES, "negative") == 2
    with pytest.raises(ValueError, match="unknown attitude 'bored'; this model knows positive, neutral, negative"):
        attitude_index(ATTITUDES, "bored")
    with pytest.raises(ValueError, match="trained without attitude labels"):
        attitude_index([], "positive")
    assert intensity_condition(None) == 0.0 and intensity_condition(2.0) == 1.0
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="intensity must be a positive number"):
            intensity_condition(bad)


# ---------------------------------------------------------------- the evaluation's classifier


def test_the_attitude_classifier_reads_attitude_and_fails_on_shuffled_labels(tmp_path):
    corpus = DyadicCorpus(write_synthetic_corpus(tmp_path / "c", clips=60, seconds=12, seed=1))
    clips = [corpus.load_clip(f"clip_{i:04d}") for i in range(60)]
    train, test = clips[:45], clips[45:]
    labels = np.array([ATTITUDES.index(c.attitude) for c in test])

    def accuracy(classifier):
        predicted = [classifier.predict(c.listener) for c in test]
        truth = np.concatenate([np.full(len(p), label) for p, label in zip(predicted, labels)])
        return balanced_accuracy(confusion_matrix(truth, np.concatenate(predicted), len(ATTITUDES)))

    assert accuracy(AttitudeClassifier.fit(train, ATTITUDES)) > 0.85  # measured 0.93
    permuted = np.random.default_rng(0).permutation([c.attitude for c in train])
    shuffled = [replace(c, attitude=str(attitude)) for c, attitude in zip(train, permuted)]
    assert accuracy(AttitudeClassifier.fit(shuffled, ATTITUDES)) < 0.7  # chance is 1/3
