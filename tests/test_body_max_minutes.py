"""``train.max_minutes``: the body's training stops when its wall-clock budget is spent, leaves a complete,
loadable checkpoint, counts the time already trained when resumed, and continues once the budget is lifted."""
import json

import pytest

import train_body
from data_utils.synthetic_subject import write_synthetic_subject
from scene.body import load_body
from utils.checkpoint import load_checkpoint

MAX_STEPS = 1000  # far more than 3 s allow anywhere (a CPU step takes tens of milliseconds)
BUDGET = "train.max_minutes=0.05"  # 3 s
TINY = ["model.init.face_count=300", "model.init.mouth_count=20", "train.val_frames=2", "train.batch_size=1",
        "train.log_every=1", "train.val_every=100000", "train.save_every=100000", "train.device=cpu",
        f"train.max_steps={MAX_STEPS}"]


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    return write_synthetic_subject(tmp_path_factory.mktemp("budget") / "subject", frames=44, size=32, seed=0,
                                   supersample=1, workers=1)


def _train(subject, model_dir, *overrides, resume=False):
    argv = ["-s", str(subject), "-m", str(model_dir), "--config", "configs/body_tiny.yaml", *TINY, *overrides]
    return train_body.main(argv + (["--resume"] if resume else []))


def test_a_spent_budget_stops_training_with_a_checkpoint_that_resumes(subject, tmp_path):
    model_dir = tmp_path / "model"
    assert _train(subject, model_dir, BUDGET) == 0
    stopped = load_checkpoint(model_dir / "body.pth", kind="body")["step"]
    assert 1 <= stopped < MAX_STEPS
    summary = json.loads((model_dir / "summary.json").read_text())
    assert summary["steps"] == stopped and summary["stopped_by"] == "max_minutes"
    load_body(model_dir)  # a complete model, usable for synthesis as it is

    # The budget counts the time already trained: resuming under the same one adds no step.
    assert _train(subject, model_dir, BUDGET, resume=True) == 0
    assert load_checkpoint(model_dir / "body.pth", kind="body")["step"] == stopped
    assert _train(subject, model_dir, "train.max_minutes=0", f"train.max_steps={stopped + 2}", resume=True) == 0
    assert load_checkpoint(model_dir / "body.pth", kind="body")["step"] == stopped + 2
