"""The body on CUDA: gsplat agrees with the reference backend; training with densification stays finite."""
import json

import numpy as np
import pytest
import torch

from scene import training
from scene.body import load_body
from utils.config import load_config

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def subject_dir(tmp_path_factory):
    from data_utils.synthetic_subject import write_synthetic_subject

    return write_synthetic_subject(tmp_path_factory.mktemp("gpu") / "subject", frames=60, size=128, seed=3,
                                   device="cuda")


def test_gsplat_render_matches_reference(subject_dir, tmp_path):
    cfg = load_config(training.BodyTrainingConfig, "configs/body_tiny.yaml",
                      [f"subject={subject_dir}", f"model_dir={tmp_path / 'm'}", "train.max_steps=1",
                       "train.device=cuda"])
    training.train(cfg, progress=False)
    body = load_body(tmp_path / "m", "cuda")
    flame = torch.from_numpy(np.load(subject_dir / "flame.npy")[:4]).cuda()
    with torch.no_grad():
        fused = body(flame, backend="gsplat")["color"]
        reference = body(flame, backend="reference")["color"]
    assert (fused - reference).abs().mean() < 2e-3


def test_training_with_densification_is_finite_and_grows(subject_dir, tmp_path):
    cfg = load_config(training.BodyTrainingConfig, "configs/body.yaml",
                      [f"subject={subject_dir}", f"model_dir={tmp_path / 'm'}", "train.max_steps=400",
                       "train.val_every=200", "train.workers=2", "model.init.face_count=4000",
                       "model.init.mouth_count=400", "densify.start_step=50", "densify.every=50",
                       "densify.stop_fraction=0.9"])
    training.train(cfg, progress=False)
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["backend"] == "gsplat"
    assert np.isfinite(summary["final"]["val_psnr"])
    assert summary["final"]["val_psnr"] > summary["baseline_mean_frame"]["psnr"]
    assert sum(summary["gaussians"].values()) != 4400  # densification cloned/split/pruned something
