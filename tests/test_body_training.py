"""scene.training / train_body.py on a tiny synthetic subject: a finite step, real learning on held-out frames,
exact resume after a real kill, the time budget and schedule, CLI."""
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import train_body
from scene import training
from data_utils.synthetic_subject import write_synthetic_subject
from scene.body import load_body
from scene.frames import SubjectFrames
from scene.subject import Subject
from utils.checkpoint import load_checkpoint
from utils.config import ConfigError, load_config
from utils.logger import read_scalars

SIZE = 32
FRAMES = 132  # 5.3 s of the synthetic listener; the last 12 frames (1/11) are validation
STEPS = 100
REPO_ROOT = Path(__file__).resolve().parents[1]


def tiny_config(subject, model_dir, *overrides):
    return load_config(training.BodyTrainingConfig, "configs/body_tiny.yaml",
                       [f"subject={subject}", f"model_dir={model_dir}", "model.init.face_count=1200",
                        "model.init.mouth_count=25", f"train.max_steps={STEPS}", "train.val_every=1000",
                        "train.save_every=1000", "train.log_every=5",
                        "train.batch_size=4", *overrides])


@pytest.fixture(scope="module")
def subject_dir(tmp_path_factory):
    return write_synthetic_subject(tmp_path_factory.mktemp("subject") / "synthetic", frames=FRAMES, size=SIZE,
                                   seed=0, supersample=1, workers=2)


@pytest.fixture(scope="module")
def trained(subject_dir, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("body") / "model"
    training.train(tiny_config(subject_dir, model_dir), progress=False)
    return model_dir


def test_one_training_step_is_finite_and_moves_every_active_group(subject_dir):
    cfg = tiny_config(subject_dir, "unused")
    subject = Subject(subject_dir)
    model = training.build_model(cfg, subject, torch.device("cpu"))
    scale = training.head_radius(model)
    optimizers = training.build_optimizers(cfg, model, scale)
    frames = SubjectFrames(subject, subject.train_ids, torch.device("cpu"),
                           mean_translation=model.mean_translation.numpy())
    batch = frames.batch([3])
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    joint_step = int(cfg.train.max_steps * 0.5)  # inside the joint phase: everything trains
    scalars = training.train_step(cfg, model, batch, optimizers, None, {}, joint_step, 0.5, "reference", scale)
    assert all(np.isfinite(float(v)) for v in scalars.values()) and float(scalars["loss"]) > 0
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert {"gaussians.face.means", "gaussians.face.colors", "gaussians.face.opacities",
            "deform.head.weight"} <= changed
    canonical_step = 0  # the first phase keeps the deformation frozen
    frozen = {name: p.detach().clone() for name, p in model.deform.named_parameters()}
    training.train_step(cfg, model, batch, optimizers, None, {}, canonical_step, 0.0, "reference", scale)
    assert all(torch.equal(p, frozen[name]) for name, p in model.deform.named_parameters())


def test_tiny_run_beats_the_mean_frame_on_validation(trained):
    summary = json.loads((trained / "summary.json").read_text())
    baseline, final = summary["baseline_mean_frame"], summary["final"]
    assert summary["steps"] == STEPS
    assert final["val_psnr"] > baseline["psnr"] + 1.0, (final, baseline)  # held-out frames, not train
    scalars = read_scalars(trained / "scalars.csv")
    losses = [value for _, value in scalars["loss"]]
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])  # the training loss fell too


def test_model_dir_loads_and_renders(trained, subject_dir):
    body = load_body(trained)
    flame = torch.from_numpy(np.load(subject_dir / "flame.npy")[:3])
    frames = body.render_frames(flame)
    assert frames.shape == (3, SIZE, SIZE, 3) and frames.dtype == torch.uint8
    assert frames.float().std() > 5  # an image, not a flat colour


def test_resume_continues_the_step_count(trained, subject_dir, tmp_path):
    model_dir = tmp_path / "resumed"
    shutil.copytree(trained, model_dir)
    with pytest.raises(FileExistsError, match="pass --resume"):
        training.train(tiny_config(subject_dir, model_dir), progress=False)
    training.train(tiny_config(subject_dir, model_dir, f"train.max_steps={STEPS + 5}"), resume=True,
                     progress=False)
    assert load_checkpoint(model_dir / "body.pth", kind="body")["step"] == STEPS + 5
    logged_steps = [step for step, _ in read_scalars(model_dir / "scalars.csv")["loss"]]
    assert max(logged_steps) == STEPS + 5 and logged_steps == sorted(logged_steps)


def test_densification_grows_sets_and_survives_resume(subject_dir, tmp_path):
    # A threshold so low that every visible Gaussian counts as under-reconstructed: growth must happen.
    densify = ["densify.enabled=true", "densify.start_step=2", "densify.every=3", "densify.stop_fraction=1.0",
               "densify.grad_threshold=1e-9", "model.init.face_count=200", "train.batch_size=1"]
    cfg = tiny_config(subject_dir, tmp_path / "m", "train.max_steps=7", *densify)
    training.train(cfg, progress=False)
    grown = json.loads((tmp_path / "m" / "summary.json").read_text())["gaussians"]
    assert grown["face"] > 200 and np.isfinite(json.loads((tmp_path / "m" / "summary.json").read_text())
                                               ["final"]["val_psnr"])
    training.train(tiny_config(subject_dir, tmp_path / "m", "train.max_steps=10", *densify), resume=True,
                     progress=False)
    resumed = load_body(tmp_path / "m").num_gaussians()
    assert resumed["face"] > grown["face"]  # state and optimisers matched the grown sets after loading


# A training process that dies by SIGKILL — no cleanup, no final save — when it is about to train step
# ``kill_at``: the hook lives here, in the test, and wraps the real train_step.
KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    import scene.training as training
    kill_at = int(sys.argv.pop(1))
    real_train_step = training.train_step
    def train_step(*args, **kwargs):
        if args[6] == kill_at:  # the step argument
            os.kill(os.getpid(), signal.SIGKILL)
        return real_train_step(*args, **kwargs)
    training.train_step = train_step
    import train_body
    sys.exit(train_body.main(sys.argv[1:]))
""")
RESUMABLE = ["model.init.face_count=200", "model.init.mouth_count=20", "train.max_steps=12", "train.batch_size=2",
             "train.log_every=1", "train.val_every=4", "train.save_every=4", "train.val_frames=3",
             "densify.enabled=true", "densify.start_step=1", "densify.every=3", "densify.grad_threshold=2e-5",
             "densify.stop_fraction=1.0"]


def checkpoint_tensors(path) -> dict:
    """Every learned tensor of a body checkpoint, by name."""
    payload = load_checkpoint(path, kind="body")
    tensors = {"jaw_pivot": payload["jaw_pivot"]}
    for name in ("face", "mouth"):
        tensors.update({f"{name}.{key}": value for key, value in payload["gaussians"][name].items()})
    for net in ("deform", "mouth_deform"):
        tensors.update({f"{net}.{key}": value for key, value in payload[net].items()})
    return tensors


def test_a_run_killed_between_checkpoints_resumes_to_the_uninterrupted_weights(subject_dir, tmp_path, monkeypatch):
    def argv(model_dir):
        return ["-s", str(subject_dir), "-m", str(model_dir), "--config", "configs/body_tiny.yaml", *RESUMABLE]

    saved_steps, real_save = [], training.save_checkpoint
    monkeypatch.setattr(training, "save_checkpoint",
                        lambda payload, *args, **kwargs: (saved_steps.append(payload["step"]),
                                                          real_save(payload, *args, **kwargs))[1])
    assert train_body.main(argv(tmp_path / "whole")) == 0
    assert saved_steps == [4, 8, 12]  # the last step is a save step: written once, not again at the end
    monkeypatch.undo()
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, "10", *argv(tmp_path / "killed")], cwd=REPO_ROOT,
                            capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert load_checkpoint(tmp_path / "killed" / "body.pth", kind="body")["step"] == 8  # died two steps later
    assert max(step for step, _ in read_scalars(tmp_path / "killed" / "scalars.csv")["loss"]) == 10
    assert train_body.main(argv(tmp_path / "killed") + ["--resume"]) == 0  # the very same config

    whole = checkpoint_tensors(tmp_path / "whole" / "body.pth")
    resumed = checkpoint_tensors(tmp_path / "killed" / "body.pth")
    assert whole.keys() == resumed.keys()
    assert whole["face.means"].shape[0] != 200  # densification cloned, split or pruned: its state resumed too
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key
    summaries = [json.loads((tmp_path / run / "summary.json").read_text()) for run in ("whole", "killed")]
    columns = ("step", "val_psnr", "val_ssim", "val_psnr_worst_decile", "gaussians")
    assert [[row[c] for c in columns] for row in summaries[0]["history"]] == \
        [[row[c] for c in columns] for row in summaries[1]["history"]]  # the validations before the kill kept
    assert [row["step"] for row in summaries[1]["history"]] == [4, 8, 12]
    assert summaries[1]["history"][-1]["gaussians"] > summaries[1]["history"][1]["gaussians"]  # grew after 8
    logs = [read_scalars(tmp_path / run / "scalars.csv") for run in ("whole", "killed")]
    assert logs[0]["loss"] == logs[1]["loss"]  # each step once, with the uninterrupted run's values
    assert [step for step, _ in logs[1]["loss"]] == list(range(1, 13))


def test_the_data_order_is_a_function_of_the_step():
    order = training.EpochOrder(count=5, batch_size=3, seed=0, device=torch.device("cpu"))
    seen = torch.cat([order(step) for step in range(10)]).tolist()  # 30 samples: six epochs of five frames
    assert all(sorted(seen[5 * e:5 * e + 5]) == list(range(5)) for e in range(6))  # each epoch sees every frame
    assert seen[:5] != seen[5:10]  # reshuffled per epoch
    fresh = training.EpochOrder(count=5, batch_size=3, seed=0, device=torch.device("cpu"))
    assert fresh(7).tolist() == seen[21:24]  # a resumed run, asking for step 7 first, reads the same frames
    assert training.EpochOrder(count=5, batch_size=3, seed=1, device=torch.device("cpu"))(0).tolist() != seen[:3]


def test_schedule_progress_by_steps_or_by_the_clock():
    cfg = load_config(training.BodyTrainingConfig, None, ["train.max_steps=100", "train.max_minutes=2"])
    assert training.schedule_progress(cfg, 25, elapsed_s=90) == 0.25  # steps only: exact resume
    cfg.train.time_schedule = True
    assert training.schedule_progress(cfg, 25, elapsed_s=90) == 0.75  # the clock is further
    assert training.schedule_progress(cfg, 80, elapsed_s=30) == 0.8
    assert training.schedule_progress(cfg, 10, elapsed_s=500) == 1.0
    assert [training.phase_at(cfg, p).name for p in (0.0, 0.09, 0.1, 0.99)] == ["canonical", "canonical",
                                                                               "joint", "joint"]
    with pytest.raises(ConfigError, match="time_schedule needs a train.max_minutes budget"):
        training.check_config(load_config(training.BodyTrainingConfig, None,
                                          ["subject=s", "model_dir=m", "train.time_schedule=true"]), False)


def test_a_time_scheduled_run_anneals_and_stops_within_its_budget(subject_dir, tmp_path):
    budget_s = 4.0
    cfg = tiny_config(subject_dir, tmp_path / "m", "train.max_steps=1000000", f"train.max_minutes={budget_s / 60}",
                      "train.time_schedule=true", "train.log_every=1", "model.init.face_count=200",
                      "train.batch_size=1")
    training.train(cfg, progress=False)
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["stopped_by"] == "max_minutes" and 3 < summary["steps"] < 1000000
    progress = [value for _, value in read_scalars(tmp_path / "m" / "scalars.csv")["progress"]]
    assert progress == sorted(progress) and progress[-1] > 0.8  # the clock drove the schedule to its end
    deform = load_checkpoint(tmp_path / "m" / "body.pth", kind="body")["train_state"]["optimizers"]["deform"]["all"]
    rates = [group["lr"] / group["initial_lr"] for group in deform["param_groups"]]
    assert max(rates) < cfg.lr.final_factor ** 0.8  # and the learning rates decayed with it


def test_cli_refuses_a_broken_subject_and_writes_nothing(subject_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(subject_dir, broken)
    (broken / "masks" / "000005.png").unlink()
    assert train_body.main(["-s", str(broken), "-m", str(tmp_path / "out"), "--config",
                            "configs/body_tiny.yaml"]) == 2
    assert "000005.png: missing file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert train_body.main(["-s", str(subject_dir), "-m", str(tmp_path / "out"), "--config",
                            "configs/body_tiny.yaml", "train.max_step=3"]) == 2
    assert "unknown config key" in capsys.readouterr().err
