"""``train.max_minutes``: the body's training stops when its wall-clock budget is spent, leaves a complete,
loadable checkpoint, and continues from it with ``--resume`` once the budget is raised."""
import json

import pytest

import train_body
from data_utils.synthetic_subject import write_synthetic_subject
from scene.body import load_body
from utils.checkpoint import load_checkpoint

MAX_STEPS = 12  # 12 steps take far longer than the 6 ms budget below on any device
TINY = ["model.init.face_count=300", "model.init.mouth_count=20", "train.val_frames=2", "train.batch_size=1",
        "train.log_every=1", "train.val_every=1000", "train.save_every=1000"]


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    return write_synthetic_subject(tmp_path_factory.mktemp("budget") / "subject", frames=44, size=32, seed=0,
                                   supersample=1, workers=1)


def _train(subject, model_dir, *overrides, resume=False):
    argv = ["-s", str(subject), "-m", str(model_dir), "--config", "configs/body_tiny.yaml", *TINY,
            f"train.max_steps={MAX_STEPS}", *overrides]
    return train_body.main(argv + (["--resume"] if resume else []))


def test_a_spent_budget_stops_training_with_a_checkpoint_that_resumes(subject, tmp_path):
    model_dir = tmp_path / "model"
    assert _train(subject, model_dir, "train.max_minutes=0.0001") == 0  # 6 ms
    stopped = load_checkpoint(model_dir / "body.pth", kind="body")
    assert stopped["step"] < MAX_STEPS
    summary = json.loads((model_dir / "summary.json").read_text())
    assert summary["steps"] == stopped["step"] and summary["wall_s"] >= 0.006
    load_body(model_dir)  # a complete model, usable for synthesis as it is

    assert _train(subject, model_dir, "train.max_minutes=0.0001", resume=True) == 0  # the budget is cumulative
    assert load_checkpoint(model_dir / "body.pth", kind="body")["step"] == stopped["step"]
    assert _train(subject, model_dir, "train.max_minutes=0", resume=True) == 0  # 0: no budget
    assert load_checkpoint(model_dir / "body.pth", kind="body")["step"] == MAX_STEPS
