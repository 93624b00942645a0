"""The shared helpers in utils/ that several packages now rely on: typed option flags, the JSON writer,
array checks that raise the caller's own error, and the subject's default validation split."""
import argparse
import json
from dataclasses import dataclass

import numpy as np
import pytest

from scene.subject import SubjectError, default_split
from utils.arrays import check_array, load_npy
from utils.atomic import save_json
from utils.config import ConfigError, add_config_flags, changed_settings, config_from_flags
from utils.errors import InputError


@dataclass
class Options:
    size: int = 512
    ratio: float = 0.5
    crop: str = "centre"
    overwrite_masks: bool = True


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_config_flags(parser, Options)
    return config_from_flags(Options, parser.parse_args(list(argv)))


def test_option_flags_are_typed_like_config_overrides():
    assert parse() == Options()
    assert parse("--overwrite_masks", "False") == Options(overwrite_masks=False)  # type(True)("False") was True
    assert parse("--size", "64", "--ratio", "1e-3", "--crop", "10,20,30,40") == Options(64, 1e-3, "10,20,30,40")
    assert parse("--crop", "123").crop == "123"  # a text field keeps its text
    with pytest.raises(ConfigError, match="--size expects an integer"):
        parse("--size", "1.5")
    with pytest.raises(ConfigError, match="--overwrite_masks expects true/false"):
        parse("--overwrite_masks", "maybe")


def test_save_json_writes_valid_json_for_nan_and_numpy_values(tmp_path):
    save_json(tmp_path / "m.json", {"fd": np.float32(1.5), "div": float("nan"), "n": np.int64(3),
                                    "rows": [(1, np.inf)]})
    text = (tmp_path / "m.json").read_text()
    assert json.loads(text) == {"fd": 1.5, "div": None, "n": 3, "rows": [[1, None]]}
    assert "NaN" not in text and "Infinity" not in text
    assert changed_settings(tmp_path / "m.json", {"fd": 1.5, "div": None, "n": 4, "rows": [[1, None]]}) == ["n"]
    assert changed_settings(tmp_path / "absent.json", {"n": 4}) == []


def test_array_checks_raise_the_callers_error(tmp_path):
    with pytest.raises(SubjectError, match=r"flame.npy: missing file$"):
        load_npy(tmp_path / "flame.npy", error=SubjectError)
    bad = np.zeros((4, 56), np.float32)
    bad[2, 1] = np.nan
    with pytest.raises(SubjectError, match=r"flame: 1 NaN/Inf values in 1 frame\(s\), first at frame 2"):
        check_array(bad, 56, "flame", error=SubjectError)
    with pytest.raises(InputError, match=r"expected float values, got dtype int64"):
        check_array(np.zeros((4, 3), np.int64), 3, "crop")
    crop = check_array(np.full((4, 3), 7, np.int64), 3, "crop", integers=True)
    assert crop.dtype == np.float32 and crop[0, 0] == 7


@pytest.mark.parametrize("frames, expected_val", [(1, []), (2, [1]), (11, [10]), (22, [20, 21]), (110, list(range(100, 110)))])
def test_default_split_holds_out_the_last_eleventh(frames, expected_val):
    train, val = default_split(frames)
    assert val == expected_val and train == list(range(frames - len(val)))
