"""`python -m brain.evaluate` end to end: a tiny corpus, tiny diffusion and regression brains, every method."""
import json

import numpy as np
import pytest
import torch

from brain import evaluate
from brain.metrics import METRIC_NAMES
from data_utils.synthetic_dyadic import write_synthetic_corpus
from utils.config import load_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run several times faster on one thread than on two contending ones (docs/BRAIN.md)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 20-clip, 4-second corpus (2 test clips) and two brains trained for a few steps on it (the pipeline is
    under test here, not the brain: docs/BRAIN.md measures learning)."""
    import train_diffusion
    from brain.config import BrainConfig

    root = tmp_path_factory.mktemp("evaluate")
    corpus = write_synthetic_corpus(root / "corpus", clips=20, seconds=4, seed=0)
    checkpoints = {}
    for objective in ("diffusion", "regression"):
        cfg = load_config(BrainConfig, "configs/brain_tiny.yaml",
                          [f"model.objective={objective}", "model.width=32", "model.layers=1", "train.max_steps=8",
                           "train.batch_size=16", "train.val_every=8", "train.val_windows=8", "train.device=cpu",
                           "train.log_every=10"])
        cfg.data, cfg.out = str(corpus), str(root / objective)
        checkpoints[objective] = str(train_diffusion.train(cfg, progress=False))
    return corpus, checkpoints


def test_the_tables_show_every_metric_once():
    shown = [name for _, columns in evaluate.TABLES for name, _ in columns]
    assert sorted(shown) == sorted(METRIC_NAMES)


def _run(corpus, checkpoints, out, *extra):
    return evaluate.main(["--data", str(corpus), "--split", "test", "--checkpoint", checkpoints["diffusion"],
                          "--samples", "2", "--steps", "2", "--baselines", "all", "--out", str(out),
                          "--regression_checkpoint", checkpoints["regression"], *extra])


def test_evaluate_writes_every_metric_for_every_method(trained, tmp_path, capsys):
    corpus, checkpoints = trained
    out = tmp_path / "eval"
    code = _run(corpus, checkpoints, out, "--save_samples", "--shuffled_speaker", "--audio_only", "--speaker_exp_only",
                "--step_sweep", "1", "--guidance_sweep", "2", "--max_seconds", "2", "--plot_clips", "1",
                "--device", "cpu")
    assert code == 0
    results = json.loads((out / "metrics.json").read_text())
    methods = ["diffusion", "diffusion[shuffled]", "diffusion[audio_only]", "diffusion[speaker_exp_only]",
               "diffusion[steps=1]", "diffusion[guidance=2]", "random", "mirror", "nearest", "mean", "regression"]
    assert list(results) == ["ground_truth"] + methods
    for method, scores in results.items():
        assert set(scores) == set(METRIC_NAMES), method
    # Ground truth against itself; a regression brain is deterministic, so its K samples never differ.
    assert results["ground_truth"]["fd_exp"] == pytest.approx(0.0, abs=1e-6)
    assert results["regression"]["frdiv"] == pytest.approx(0.0, abs=1e-10)
    assert results["diffusion"]["frdiv"] > 0.0
    assert results["mean"]["frvar"] == pytest.approx(0.0, abs=1e-10)  # held still over time

    table = (out / "metrics.md").read_text()
    assert all(f"| {method} |" in table for method in ["ground_truth"] + methods)
    assert table == capsys.readouterr().out.rstrip("\n") + "\n"  # the CLI prints the table it wrote
    test_ids = (corpus / "splits" / "test.txt").read_text().split()
    for method in methods:
        for clip_id in test_ids:
            motion = np.load(out / "samples" / method / f"{clip_id}.npy")
            assert motion.shape == (2, 50, 56) and motion.dtype == np.float32
    run = json.loads((out / "run.json").read_text())
    assert run["clips"] == test_ids and set(run["seconds_per_method"]) == set(methods)
    assert run["notes"] == [] and "Note:" not in table
    assert run["checkpoint_step"] == 8  # the tiny brain's train.max_steps: which weights these figures are of
    assert (out / f"motion_{test_ids[0]}.png").stat().st_size > 0 and (out / "std_bars.png").is_file()


def test_evaluate_is_reproducible_and_replaces_its_own_output(trained, tmp_path):
    corpus, checkpoints = trained
    out = tmp_path / "eval"
    args = ("--baselines", "mean", "--max_clips", "1", "--max_seconds", "2", "--plot_clips", "0", "--device", "cpu")
    assert _run(corpus, checkpoints, out, *args) == 0
    first = (out / "metrics.json").read_text()
    assert _run(corpus, checkpoints, out, *args) == 0  # an earlier evaluation folder is replaced
    assert (out / "metrics.json").read_text() == first
    assert json.loads(first)["diffusion"]["mse_exp"] > 0


def test_all_baselines_without_a_regression_checkpoint_says_regression_is_left_out(trained, tmp_path, capsys):
    corpus, _ = trained
    out = tmp_path / "eval"
    assert evaluate.main(["--data", str(corpus), "--baselines", "all", "--samples", "1", "--max_clips", "1",
                          "--max_seconds", "2", "--plot_clips", "0", "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "note: --baselines all without --regression_checkpoint: the regression baseline is left out" in printed
    assert "regression" not in json.loads((out / "metrics.json").read_text())
    notes = json.loads((out / "run.json").read_text())["notes"]
    assert len(notes) == 1 and "regression baseline is left out" in notes[0]
    assert "regression baseline is left out" in (out / "metrics.md").read_text()


def test_sampling_sets_every_diffusion_row(trained, tmp_path, capsys):
    """--sampling replaces the checkpoint's sampling defaults for the diffusion row (and its sweeps): the row
    sampled with history guidance 0 differs from the default one, and a sweep back to 1 inside that run gives
    the default run's samples exactly."""
    corpus, checkpoints = trained
    args = ("--baselines", "none", "--max_clips", "1", "--max_seconds", "2", "--plot_clips", "0", "--device", "cpu",
            "--save_samples")
    assert _run(corpus, checkpoints, tmp_path / "default", *args) == 0
    assert _run(corpus, checkpoints, tmp_path / "forgetful", *args, "--sampling", "guidance_history=0",
                "--sweep", "guidance_history=1") == 0
    clip_id = (corpus / "splits" / "test.txt").read_text().split()[0]

    def samples(run, method):
        return np.load(tmp_path / run / "samples" / method / f"{clip_id}.npy")

    assert not np.array_equal(samples("forgetful", "diffusion"), samples("default", "diffusion"))
    np.testing.assert_array_equal(samples("forgetful", "diffusion[guidance_history=1]"), samples("default", "diffusion"))
    assert json.loads((tmp_path / "forgetful" / "run.json").read_text())["config"]["sampling"] == "guidance_history=0"
    capsys.readouterr()
    assert _run(corpus, checkpoints, tmp_path / "bad", *args, "--sampling", "history=2") == 2
    assert "--sampling 'history=2': expected key=value items" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()

def test_bad_inputs_fail_cleanly_without_output(trained, tmp_path, capsys):
    corpus, checkpoints = trained
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert _run(corpus, checkpoints, foreign) == 2
    assert "holds no earlier evaluation" in capsys.readouterr().err and (foreign / "notes.txt").is_file()

    out = tmp_path / "eval"
    code = evaluate.main(["--data", str(tmp_path / "missing"), "--baselines", "mean", "--out", str(out)])
    assert code == 2 and "missing meta.json" in capsys.readouterr().err
    code = evaluate.main(["--data", str(corpus), "--checkpoint", checkpoints["diffusion"], "--baselines", "median",
                          "--out", str(out)])
    assert code == 2 and "unknown baseline(s) median" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.gpu
def test_evaluate_on_cuda_with_and_without_graphs(trained, tmp_path):
    corpus, checkpoints = trained
    args = ("--baselines", "mean,regression", "--max_clips", "2", "--max_seconds", "2", "--plot_clips", "0")
    assert _run(corpus, checkpoints, tmp_path / "cpu", *args, "--device", "cpu") == 0
    assert _run(corpus, checkpoints, tmp_path / "cuda", *args, "--device", "cuda") == 0
    on_cpu = json.loads((tmp_path / "cpu" / "metrics.json").read_text())
    on_cuda = json.loads((tmp_path / "cuda" / "metrics.json").read_text())
    assert on_cuda["mean"] == on_cpu["mean"]  # data baselines never touch the device
    assert set(on_cuda["diffusion"]) == set(METRIC_NAMES)
    assert on_cuda["regression"]["mse_exp"] == pytest.approx(on_cpu["regression"]["mse_exp"], rel=1e-3)
    assert _run(corpus, checkpoints, tmp_path / "graphs", *args, "--device", "cuda", "--cuda_graphs") == 0
    graphed = json.loads((tmp_path / "graphs" / "metrics.json").read_text())
    for name in ("fd_exp", "mse_exp", "frdiv"):  # CUDA graphs change speed, not samples
        assert graphed["diffusion"][name] == pytest.approx(on_cuda["diffusion"][name], rel=1e-3)


class CountingGenerator:
    """A stand-in brain that records what each clip was asked: ``(seed, attitude)`` per sampled clip."""

    def __init__(self):
        self.calls = []
        self.batches = []  # generate_many only: the seeds of each call

    def generate(self, audio, exp, *, num_samples, seed, attitude=None, **options):
        self.calls.append((seed, attitude))
        return np.full((num_samples, len(audio), 56), seed + len(self.calls), np.float32)


class BatchingGenerator(CountingGenerator):
    """The same, with the batched entry point the diffusion brain has (``ListenerPolicy.generate_many``)."""

    def generate_many(self, speakers, num_samples, seeds, attitudes, **options):
        self.batches.append(list(seeds))
        return [self.generate(audio, exp, num_samples=num_samples, seed=seed, attitude=attitude, **options)
                for (audio, exp), seed, attitude in zip(speakers, seeds, attitudes)]


@pytest.mark.parametrize("generator_type", [CountingGenerator, BatchingGenerator])
def test_a_clip_asked_its_own_attitude_twice_is_sampled_once(generator_type):
    """With --attitudes, ``diffusion`` (each clip's own attitude) and ``diffusion[attitude=<name>]`` ask the
    same of that attitude's clips: it is sampled once and the second row takes those samples; anything else
    (another attitude, another speaker) is sampled anew — one clip at a time or, for a brain with
    ``generate_many``, one batch per row."""
    from types import SimpleNamespace

    clips = [SimpleNamespace(clip_id=f"c{i}", attitude=a, num_frames=4, speaker_audio=np.zeros((4, 768)),
                             speaker_exp=np.zeros((4, 50))) for i, a in enumerate(["warm", "cold", "warm"])]
    cfg = SimpleNamespace(samples=2, seed=10, batch_windows=512)
    generator = generator_type()
    own = evaluate.Method("diffusion", generator, {"steps": 3}, own_attitude=True)
    warm = evaluate.Method("diffusion[attitude=warm]", generator, {"steps": 3, "attitude": "warm"})
    shuffled = evaluate.Method("diffusion[shuffled]", generator, {"steps": 3}, [(c.speaker_audio, c.speaker_exp)
                                                                               for c in clips], own_attitude=True)
    kept = {}
    own_samples = evaluate.generate_samples(own, clips, cfg, kept)
    warm_samples = evaluate.generate_samples(warm, clips, cfg, kept)
    evaluate.generate_samples(shuffled, clips, cfg, kept)
    assert generator.calls == [(10, "warm"), (11, "cold"), (12, "warm"),  # the own-attitude row
                               (11, "warm"),  # only the cold clip is asked something new
                               (10, "warm"), (11, "cold"), (12, "warm")]  # another speaker: sampled anew
    assert warm_samples[0] is own_samples[0] and warm_samples[2] is own_samples[2]
    assert not np.array_equal(warm_samples[1], own_samples[1])
    assert list(kept) == [(id(generator), 1, (("attitude", "cold"), ("steps", 3)))]  # waits for a cold row
    assert generator.batches == ([] if generator_type is CountingGenerator else [[10, 11, 12], [11], [10, 11, 12]])
