"""Shared helpers: config presets and overrides, atomic outputs, checkpoint kinds, FLAME slices."""
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from utils.atomic import atomic_output
from utils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from utils.config import ConfigError, config_to_dict, load_config
from utils.flame import FLAME_DIM, deformation_code, join_flame, split_flame


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


def test_flame_slices_round_trip():
    flame = np.random.default_rng(0).standard_normal((7, FLAME_DIM)).astype(np.float32)
    parts = split_flame(flame)
    assert parts["exp"].shape == (7, 50) and parts["global_rot"].shape == (7, 3) and parts["jaw"].shape == (7, 3)
    np.testing.assert_array_equal(join_flame(**parts), flame)
    code = deformation_code(torch.from_numpy(flame))
    assert code.shape == (7, 53)
    np.testing.assert_array_equal(code[:, 50:].numpy(), flame[:, 53:])
