"""The §3.2 subject reader: lazy, bounded cache, default splits, and a clear refusal for every broken file."""
import json

import numpy as np
import pytest
from PIL import Image

from scene.subject import Subject, SubjectError
from utils.flame import FLAME_DIM


def write_subject(root, frames=11, width=8, height=6, *, translation=True, splits=None, mouth_masks=False):
    """A hand-made subject: ``frames`` distinct solid-colour frames with a centred square mask (and, with
    ``mouth_masks``, a mouth mask whose inside grows with the frame index)."""
    (root / "frames").mkdir(parents=True)
    (root / "masks").mkdir()
    if mouth_masks:
        (root / "mouth_masks").mkdir()
    meta = {"fps": 25, "width": width, "height": height, "fx": 10.0, "fy": 10.0, "cx": width / 2, "cy": height / 2}
    (root / "meta.json").write_text(json.dumps(meta))
    for i in range(frames):
        Image.fromarray(np.full((height, width, 3), (i * 10) % 256, np.uint8)).save(root / "frames" / f"{i:06d}.png")
        mask = np.zeros((height, width), np.uint8)
        mask[1:-1, 2:-2] = 255
        Image.fromarray(mask).save(root / "masks" / f"{i:06d}.png")
        if mouth_masks:
            mouth = np.zeros((height, width), np.uint8)
            mouth.reshape(-1)[:i] = 255  # frame i has i pixels inside the mouth
            Image.fromarray(mouth).save(root / "mouth_masks" / f"{i:06d}.png")
    np.save(root / "flame.npy", np.zeros((frames, FLAME_DIM), np.float32))
    if translation:
        np.save(root / "translation.npy", np.tile(np.float32([0, 0, 0.5]), (frames, 1)))
    if splits is not None:
        (root / "splits.json").write_text(json.dumps(splits))
    return root


def test_reads_lazily_with_bounded_cache_and_default_split(tmp_path):
    subject = Subject(write_subject(tmp_path / "s", frames=22), cache_frames=3)
    assert subject.num_frames == 22 and (subject.width, subject.height) == (8, 6)
    assert subject.val_ids == [20, 21] and subject.train_ids == list(range(20))  # last 1/11 is val
    assert subject.frame(5).shape == (6, 8, 3) and subject.frame(5).dtype == np.uint8
    assert int(subject.frame(5)[0, 0, 0]) == 50
    assert subject.mask(5).shape == (6, 8) and set(np.unique(subject.mask(5))) == {0, 255}
    for i in range(10):
        subject.frame(i)
    assert len(subject._cache) == 3  # never more decoded images than the bound
    assert subject.background().shape == (6, 8, 3) and subject.background().max() == 0  # black when absent


def test_splits_json_is_used(tmp_path):
    subject = Subject(write_subject(tmp_path / "s", splits={"train": [0, 2, 4], "val": [1]}))
    assert subject.train_ids == [0, 2, 4] and subject.val_ids == [1]


def _break_missing_frame(root):
    (root / "frames" / "000003.png").unlink()


def _break_missing_mask(root):
    (root / "masks" / "000007.png").unlink()


def _break_flame_length(root):
    np.save(root / "flame.npy", np.zeros((9, FLAME_DIM), np.float32))


def _break_flame_width(root):
    np.save(root / "flame.npy", np.zeros((11, 53), np.float32))


def _break_translation_length(root):
    np.save(root / "translation.npy", np.zeros((10, 3), np.float32))


def _break_flame_nan(root):
    flame = np.zeros((11, FLAME_DIM), np.float32)
    flame[4, 2] = np.nan
    np.save(root / "flame.npy", flame)


def _break_meta(root):
    meta = json.loads((root / "meta.json").read_text())
    del meta["fx"]
    (root / "meta.json").write_text(json.dumps(meta))


def _break_splits(root):
    (root / "splits.json").write_text(json.dumps({"train": [0, 99], "val": [1]}))


@pytest.mark.parametrize("breaker, message", [
    (_break_missing_frame, "000003.png: missing file"),
    (_break_missing_mask, "000007.png: missing file"),
    (_break_flame_length, "holds 11 images but flame.npy has 9"),
    (_break_flame_width, "expected shape [T,56]"),
    (_break_translation_length, "translation.npy: 10 rows but flame.npy has 11"),
    (_break_flame_nan, "NaN/Inf"),
    (_break_meta, "missing key(s) fx"),
    (_break_splits, "train frame 99 out of range"),
])
def test_refuses_broken_subject_naming_the_file(tmp_path, breaker, message):
    root = write_subject(tmp_path / "s")
    breaker(root)
    with pytest.raises(SubjectError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        Subject(root)


def test_refuses_bad_images_when_read(tmp_path):
    root = write_subject(tmp_path / "s")
    Image.fromarray(np.zeros((5, 8, 3), np.uint8)).save(root / "frames" / "000002.png")
    (root / "masks" / "000004.png").write_bytes(b"not a png")
    subject = Subject(root)
    with pytest.raises(SubjectError, match=r"000002.png: image is 8x5 but meta.json says 8x6"):
        subject.frame(2)
    with pytest.raises(SubjectError, match=r"000004.png: unreadable image"):
        subject.mask(4)
    with pytest.raises(IndexError, match="out of range"):
        subject.frame(11)


def test_mouth_masks_are_optional_and_read_when_present(tmp_path):
    without = Subject(write_subject(tmp_path / "plain"))
    assert not without.has_mouth_masks
    with pytest.raises(SubjectError, match="no mouth_masks/ folder"):
        without.mouth_mask(0)
    subject = Subject(write_subject(tmp_path / "mouth", mouth_masks=True))
    assert subject.has_mouth_masks
    mouth = subject.mouth_mask(7)
    assert mouth.shape == (6, 8) and mouth.dtype == np.uint8 and int((mouth == 255).sum()) == 7
    assert set(np.unique(mouth)) == {0, 255}


def test_refuses_a_missing_or_wrongly_sized_mouth_mask_naming_the_file(tmp_path):
    root = write_subject(tmp_path / "missing", mouth_masks=True)
    (root / "mouth_masks" / "000004.png").unlink()
    with pytest.raises(SubjectError, match=r"mouth_masks/000004.png: missing file"):
        Subject(root)
    root = write_subject(tmp_path / "extra", mouth_masks=True)
    Image.fromarray(np.zeros((6, 8), np.uint8)).save(root / "mouth_masks" / "000011.png")
    with pytest.raises(SubjectError, match=r"mouth_masks: holds 12 images but flame.npy has 11"):
        Subject(root)
    root = write_subject(tmp_path / "size", mouth_masks=True)
    Image.fromarray(np.zeros((6, 7), np.uint8)).save(root / "mouth_masks" / "000003.png")
    subject = Subject(root)
    with pytest.raises(SubjectError, match=r"mouth_masks/000003.png: image is 7x6 but meta.json says 8x6"):
        subject.mouth_mask(3)
