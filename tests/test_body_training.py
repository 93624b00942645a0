"""scene.training / train_body.py on a tiny synthetic subject: a finite step, real learning on held-out frames, resume, CLI."""
import json
import shutil

import numpy as np
import pytest
import torch

import train_body
from scene import training
from data_utils.synthetic_subject import write_synthetic_subject
from scene.body import load_body
from scene.subject import Subject
from utils.checkpoint import load_checkpoint
from utils.config import load_config
from utils.logger import read_scalars

SIZE = 32
FRAMES = 132  # 5.3 s of the synthetic listener; the last 12 frames (1/11) are validation
STEPS = 60


def tiny_config(subject, model_dir, *overrides):
    return load_config(training.BodyTrainingConfig, "configs/body_tiny.yaml",
                       [f"subject={subject}", f"model_dir={model_dir}", "model.init.face_count=600",
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
    dataset = training.FrameDataset(subject, subject.train_ids, model.mean_translation.numpy())
    batch = training.to_device(torch.utils.data.default_collate([dataset[3]]), torch.device("cpu"))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    joint_step = int(cfg.train.max_steps * 0.5)  # inside the joint phase: everything trains
    scalars = training.train_step(cfg, model, batch, optimizers, None, {}, joint_step, "reference", scale)
    assert all(np.isfinite(v) for v in scalars.values()) and scalars["loss"] > 0
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert {"gaussians.face.means", "gaussians.face.colors", "gaussians.face.opacities",
            "deform.head.weight"} <= changed
    canonical_step = 0  # the first phase keeps the deformation frozen
    frozen = {name: p.detach().clone() for name, p in model.deform.named_parameters()}
    training.train_step(cfg, model, batch, optimizers, None, {}, canonical_step, "reference", scale)
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
