"""Shared helpers: config presets and overrides, atomic outputs, checkpoint kinds and versions, scalar logs,
FLAME slices."""
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from utils.atomic import atomic_output
from utils import checkpoint as checkpoint_module
from utils.checkpoint import FORMAT_VERSION, CheckpointError, load_checkpoint, save_checkpoint
from utils.config import ConfigError, config_to_dict, load_config
from utils.flame import FLAME_DIM, deformation_code, join_flame, split_flame
from utils.logger import ScalarLogger, read_scalars


@dataclass
class _Train:
    max_steps: int = 10
    lr: float = 1e-3
    use_ema: bool = True


@dataclass
class _Cfg:
    name: str = "x"
    limit: int | None = None
    dims: list[int] = field(default_factory=lambda: [1, 2])
    train: _Train = field(default_factory=_Train)


def test_config_preset_and_overrides(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("name: tiny\ntrain:\n  max_steps: 50\n")
    cfg = load_config(_Cfg, preset, ["train.lr=3e-4", "train.use_ema=false", "dims=[4,5,6]"])
    assert cfg.name == "tiny" and cfg.train.max_steps == 50
    assert cfg.train.lr == pytest.approx(3e-4) and cfg.train.use_ema is False
    assert cfg.dims == [4, 5, 6]
    assert config_to_dict(cfg)["train"]["max_steps"] == 50
    assert cfg.limit is None
    assert load_config(_Cfg, None, ["limit=7"]).limit == 7
    assert load_config(_Cfg, None, ["limit=null"]).limit is None


@pytest.mark.parametrize("override, message", [
    ("train.max_step=5", "unknown config key"),
    ("train.max_steps=abc", "expects an integer"),
    ("train.use_ema=3", "true/false"),
    ("nokeyvalue", "key=value"),
    ("limit=seven", "expects an integer"),
])
def test_config_rejects_bad_overrides(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_Cfg, None, [override])


def test_atomic_output_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"done")
    assert target.read_bytes() == b"done" and list(tmp_path.iterdir()) == [target]


def test_checkpoint_kind_is_checked(tmp_path):
    path = tmp_path / "brain.pth"
    save_checkpoint({"config": {"a": 1}, "step": 3, "model": {"w": torch.ones(2)}}, path, kind="brain")
    payload = load_checkpoint(path, kind="brain")
    assert payload["step"] == 3 and torch.equal(payload["model"]["w"], torch.ones(2))
    with pytest.raises(CheckpointError, match="is a brain checkpoint, but a body checkpoint"):
        load_checkpoint(path, kind="body")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_checkpoint(tmp_path / "junk.pth", kind="brain")


def test_checkpoint_of_another_format_version_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "old.pth"
    monkeypatch.setattr(checkpoint_module, "FORMAT_VERSION", FORMAT_VERSION - 1)  # as an older release wrote it
    save_checkpoint({"config": {}, "step": 1}, path, kind="brain")
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match=rf"old.pth: checkpoint format_version {FORMAT_VERSION - 1}, "
                                              rf"but this code reads format_version {FORMAT_VERSION}"):
        load_checkpoint(path, kind="brain")
    torch.save({"kind": "brain", "config": {}}, tmp_path / "unversioned.pth")
    with pytest.raises(CheckpointError, match="unversioned.pth: checkpoint format_version None"):
        load_checkpoint(tmp_path / "unversioned.pth", kind="brain")
    with pytest.raises(CheckpointError, match="is a brain checkpoint, but a body"):  # the kind is named first
        load_checkpoint(path, kind="body")


def _log_steps(logger, steps):
    for step in steps:
        logger.log(step, loss=step / 10)
        if step % 4 == 0:
            logger.log(step, val_loss=step / 100)


def test_scalar_log_of_a_resumed_run_has_each_step_once(tmp_path):
    """A run checkpointed at step 8 crashed after logging step 10; resumed from 8, it logs 9, 10, 11, 12."""
    crashed = ScalarLogger(tmp_path, resume_step=None, tensorboard=False)
    _log_steps(crashed, range(11))
    crashed.close()
    with open(tmp_path / "scalars.csv", "a") as handle:
        handle.write("1")  # killed while writing step 11's row: "11,loss,1.1" cut to "1"
    resumed = ScalarLogger(tmp_path, resume_step=8, tensorboard=False)
    _log_steps(resumed, range(9, 13))
    resumed.close()
    scalars = read_scalars(tmp_path / "scalars.csv")
    assert scalars["loss"] == [(step, pytest.approx(step / 10)) for step in range(13)]
    assert scalars["val_loss"] == [(step, pytest.approx(step / 100)) for step in (0, 4, 8, 12)]
    ScalarLogger(tmp_path, resume_step=None, tensorboard=False).close()  # a new run starts a new log
    assert read_scalars(tmp_path / "scalars.csv") == {}


def test_flame_slices_round_trip():
    flame = np.random.default_rng(0).standard_normal((7, FLAME_DIM)).astype(np.float32)
    parts = split_flame(flame)
    assert parts["exp"].shape == (7, 50) and parts["global_rot"].shape == (7, 3) and parts["jaw"].shape == (7, 3)
    np.testing.assert_array_equal(join_flame(**parts), flame)
    code = deformation_code(torch.from_numpy(flame))
    assert code.shape == (7, 53)
    np.testing.assert_array_equal(code[:, 50:].numpy(), flame[:, 53:])
