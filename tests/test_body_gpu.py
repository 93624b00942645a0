"""The body on CUDA: the fast render path (CUDA-graphed deformation, both layers in one gsplat pass) matches the
two-layer reference composite; training with densification stays finite and grows; evaluation agrees with CPU."""
import json

import numpy as np
import pytest
import torch

from gaussian_renderer import stack_in_order
from scene import training
from scene.body import load_body
from scene.evaluate import evaluate_body
from scene.frames import SubjectFrames
from scene.subject import Subject
from utils.config import load_config
from utils.flame import FPS

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def subject_dir(tmp_path_factory):
    from data_utils import synthetic_semantics as sem
    from data_utils.synthetic_subject import synthetic_listener_motion, write_synthetic_subject

    motion = synthetic_listener_motion(80, seed=3)
    seconds = np.arange(80) / FPS
    motion["flame"][:, sem.JAW_OPEN] = 0.3 * np.clip(np.sin(2 * np.pi * seconds / 1.6), 0, None) ** 2  # opens often
    root = write_synthetic_subject(tmp_path_factory.mktemp("gpu") / "subject", size=128, motion=motion,
                                   device="cuda")
    subject = Subject(root)  # validation: the four frames that show most of the mouth, and four others
    pixels = np.array([(subject.mouth_mask(i) > 0).sum() for i in range(subject.num_frames)])
    val = sorted(set(np.argsort(-pixels)[:4].tolist()) | {5, 25, 45, 65})
    (root / "splits.json").write_text(json.dumps({"train": [i for i in range(80) if i not in val], "val": val}))
    return root


@pytest.fixture(scope="module")
def trained_body(subject_dir, tmp_path_factory):
    """configs/body.yaml for 600 steps on the 128x128 subject: densified, deformed, mouth trained."""
    model_dir = tmp_path_factory.mktemp("gpu_body") / "m"
    cfg = load_config(training.BodyTrainingConfig, "configs/body.yaml",
                      [f"subject={subject_dir}", f"model_dir={model_dir}", "train.max_steps=600",
                       "train.max_minutes=0", "train.time_schedule=false", "train.val_every=300",
                       "model.init.face_count=4000", "model.init.mouth_count=400", "densify.start_step=50",
                       "densify.every=50", "densify.stop_fraction=0.9"])
    training.train(cfg, progress=False)
    return model_dir


def test_training_with_densification_is_finite_and_grows(trained_body):
    summary = json.loads((trained_body / "summary.json").read_text())
    assert summary["backend"] == "gsplat" and summary["frames_preloaded"]
    assert np.isfinite(summary["final"]["val_psnr"]) and np.isfinite(summary["final"]["val_mouth_psnr"])
    assert summary["final"]["val_psnr"] > summary["baseline_mean_frame"]["psnr"]
    assert sum(summary["gaussians"].values()) != 4400  # densification cloned/split/pruned something


def test_fast_render_path_matches_the_two_layer_reference_composite(trained_body, subject_dir):
    body = load_body(trained_body, "cuda")
    flame = torch.from_numpy(np.load(subject_dir / "flame.npy")[:8]).cuda()
    with torch.no_grad():
        fast = body.render_frames(flame).float() / 255  # graphed deformation, one gsplat pass
        reference = body(flame, backend="reference")["color"].clamp(0, 1)  # eager, two reference passes
        two_gsplat = body(flame, backend="gsplat")["color"].clamp(0, 1)  # eager, two gsplat passes
    assert (fast - reference).abs().mean() < 2e-3  # gsplat vs reference parity (tests/test_gsplat_parity.py)
    assert (fast - two_gsplat).abs().mean() < 1e-3 and (fast - two_gsplat).abs().max() < 0.02


def test_cuda_graph_replays_the_eager_deformation_for_any_input(trained_body, subject_dir):
    body = load_body(trained_body, "cuda")
    all_flame = torch.from_numpy(np.load(subject_dir / "flame.npy")).cuda()
    with torch.no_grad():
        for start in (0, 4, 20):  # the same graph (batch 4), new inputs each time
            flame = all_flame[start:start + 4]
            graphed = body.stacked_layer(flame)
            eager = stack_in_order(body.pose(flame)[0], body.camera.near_plane)
            for key in ("means", "quats", "scales", "opacities", "colors"):
                torch.testing.assert_close(getattr(graphed, key), getattr(eager, key), rtol=1e-5, atol=1e-6)
        translation = torch.full((2, 3), 0.01, device="cuda") + body.mean_translation
        shifted = body.stacked_layer(all_flame[:2], translation)  # its own graph: batch 2, with translation
        torch.testing.assert_close(shifted.means, stack_in_order(body.pose(all_flame[:2], translation)[0],
                                                                 body.camera.near_plane).means)
    assert set(body._pose_graphs) == {(4, False), (2, True)}


def test_evaluation_on_cuda_agrees_with_cpu(trained_body, subject_dir):
    subject = Subject(subject_dir)
    results = {}
    for device in ("cuda", "cpu"):
        body = load_body(trained_body, device)
        frames = SubjectFrames(subject, subject.val_ids, torch.device(device),
                               mean_translation=body.mean_translation.cpu().numpy())
        results[device] = evaluate_body(body, frames).metrics()
    for key in ("psnr", "psnr_worst_decile", "mouth_psnr"):
        assert abs(results["cuda"][key] - results["cpu"][key]) < 0.3, (key, results)
