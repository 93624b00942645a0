"""A tiny generated subject video (64x64, 30 fps, 2 s) + masks + EMOCA folders -> a §3.2 subject folder."""
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_utils.emoca_io import weak_perspective_to_translation
from fixtures import emoca_results_dir, moving_disk_frames, smooth_codes, write_emoca_frames, \
    write_frames_video
from data_utils.process import (ProcessError, ProcessOptions, main, masked_median, mediapipe_head_masker,
                                process_subject)
from scene.subject import Subject
from utils.flame import FLAME_DIM

REPO = Path(__file__).resolve().parents[1]
SOURCE_FRAMES, SOURCE_FPS, SIZE = 60, 30, 32  # 2 s at 30 fps -> 50 frames at 25 fps


@pytest.fixture(scope="module")
def subject_inputs(tmp_path_factory):
    base = tmp_path_factory.mktemp("subject_inputs")
    frames, masks = moving_disk_frames(SOURCE_FRAMES, 64)
    video = write_frames_video(base / "S1" / "S1.mp4", frames, SOURCE_FPS)
    mask_video = write_frames_video(base / "S1_masks.mp4", np.repeat(masks[..., None], 3, -1), SOURCE_FPS)
    exp, pose = smooth_codes(SOURCE_FRAMES)
    cam = np.tile([[9.0, 0.01, -0.02]], (SOURCE_FRAMES, 1)).astype(np.float32)
    crop = np.tile([[32.0, 30.0, 40.0]], (SOURCE_FRAMES, 1)).astype(np.float32)
    write_emoca_frames(emoca_results_dir(base / "emoca", "S1"), exp, pose, missing=[5], cam=cam, crop=crop)
    return {"base": base, "video": video, "mask_video": mask_video, "frames": frames, "masks": masks,
            "emoca": base / "emoca", "cam": cam, "crop": crop}


@pytest.fixture(scope="module")
def subject(subject_inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("subject") / "S1"
    provenance = process_subject(subject_inputs["video"], subject_inputs["emoca"], out, ProcessOptions(size=SIZE),
                                 masks=subject_inputs["mask_video"])
    return out, provenance


def test_subject_folder_has_the_contract_counts_and_shapes(subject, subject_inputs):
    out, provenance = subject
    loaded = Subject(out)
    assert loaded.num_frames == 50 and loaded.fps == 25 and (loaded.width, loaded.height) == (SIZE, SIZE)
    assert loaded.flame.shape == (50, FLAME_DIM) and loaded.translation.shape == (50, 3)
    assert loaded.frame(7).shape == (SIZE, SIZE, 3) and set(np.unique(loaded.mask(7))) <= {0, 255}
    assert len(loaded.val_ids) == 5 and loaded.train_ids == list(range(45))
    assert provenance["emoca"]["missing_frames"] == 1
    # masks follow the disk: compare with the generator's own mask at the nearest source frame, downsized
    source_index = int(round(7 * SOURCE_FPS / 25))
    expected = np.asarray(Image.fromarray(subject_inputs["masks"][source_index]).resize((SIZE, SIZE))) > 127
    overlap = (expected & (loaded.mask(7) > 0)).sum() / (expected | (loaded.mask(7) > 0)).sum()
    assert overlap > 0.85


def test_background_plate_recovers_the_static_background(subject, subject_inputs):
    out, _ = subject
    plate = np.asarray(Image.open(out / "background.png").convert("RGB")).astype(float)
    # the generator's background is every pixel the disk never covers
    never_covered = ~(subject_inputs["masks"] > 0).any(axis=0)
    truth = subject_inputs["frames"][0].astype(float)
    small_truth = np.asarray(Image.fromarray(truth.astype(np.uint8)).resize((SIZE, SIZE), Image.BOX)).astype(float)
    small_clear = np.asarray(Image.fromarray(never_covered.astype(np.uint8) * 255).resize((SIZE, SIZE))) == 255
    error = np.abs(plate - small_truth)[small_clear].mean()
    assert error < 8.0
    assert np.abs(plate - small_truth)[small_clear].mean() < np.abs(small_truth.mean() - small_truth).mean()


def test_intrinsics_and_translation_follow_the_crop(subject, subject_inputs):
    out, _ = subject
    meta = json.loads((out / "meta.json").read_text())
    default_focal = 32 / np.tan(np.radians(30))  # 60 degrees across the 64-pixel source
    assert meta["fx"] == pytest.approx(default_focal * SIZE / 64) and meta["cx"] == pytest.approx(SIZE / 2)
    scale = SIZE / 64
    crop = subject_inputs["crop"][:1] * scale
    expected = weak_perspective_to_translation(subject_inputs["cam"][:1], crop, fx=meta["fx"], fy=meta["fy"],
                                               cx=meta["cx"], cy=meta["cy"])
    np.testing.assert_allclose(np.load(out / "translation.npy")[0], expected[0], rtol=1e-5)


def test_rerun_skips_and_changed_settings_are_refused(subject, subject_inputs):
    out, _ = subject
    stamp = (out / "frames" / "000000.png").stat().st_mtime_ns
    process_subject(subject_inputs["video"], subject_inputs["emoca"], out, ProcessOptions(size=SIZE),
                    masks=subject_inputs["mask_video"])
    assert (out / "frames" / "000000.png").stat().st_mtime_ns == stamp
    with pytest.raises(ProcessError, match="different settings.*size"):
        process_subject(subject_inputs["video"], subject_inputs["emoca"], out, ProcessOptions(size=16),
                        masks=subject_inputs["mask_video"])


def test_script_path_with_a_mask_folder(subject_inputs, tmp_path):
    mask_folder = tmp_path / "masks_in"
    mask_folder.mkdir()
    for index in range(50):  # one mask per output frame, at the source size
        Image.fromarray(subject_inputs["masks"][int(round(index * SOURCE_FPS / 25))]).save(mask_folder / f"m{index:03d}.png")
    out = tmp_path / "S1_from_folder"
    result = subprocess.run([sys.executable, str(REPO / "data_utils" / "process.py"), str(subject_inputs["video"]),
                             "--emoca", str(subject_inputs["emoca"]), "--masks", str(mask_folder), "--out", str(out),
                             "--size", "16", "--focal", "50"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    loaded = Subject(out)
    assert loaded.num_frames == 50 and loaded.mask(0).shape == (16, 16)
    assert loaded.meta["fx"] == pytest.approx(50 * 16 / 64)


def test_bad_input_is_refused_without_output(subject_inputs, tmp_path, capsys):
    long_codes = tmp_path / "long_emoca"
    exp, pose = smooth_codes(90)
    write_emoca_frames(emoca_results_dir(long_codes, "S1"), exp, pose)  # 3 s of codes for a 2 s video
    out = tmp_path / "refused"
    args = [str(subject_inputs["video"]), "--masks", str(subject_inputs["mask_video"]), "--out", str(out)]
    assert main(args + ["--emoca", str(long_codes), "--size", "16"]) == 2
    assert "codes for 90 frames, but the video has only 60" in capsys.readouterr().err and not out.exists()
    # EMOCA run on the 25 fps frames, but only on the first 30 of 50
    short_codes = tmp_path / "short_emoca"
    write_emoca_frames(emoca_results_dir(short_codes, "S1"), exp[:30], pose[:30])
    assert main(args + ["--emoca", str(short_codes), "--size", "16", "--emoca_input", "frames"]) == 2
    assert "EMOCA gives 30 frames" in capsys.readouterr().err and not out.exists()
    few_masks = tmp_path / "few_masks"
    few_masks.mkdir()
    Image.fromarray(subject_inputs["masks"][0]).save(few_masks / "0.png")
    with pytest.raises(ProcessError, match="1 mask images, but the video gives 50 frames"):
        process_subject(subject_inputs["video"], subject_inputs["emoca"], tmp_path / "few", ProcessOptions(size=16),
                        masks=few_masks)
    assert not (tmp_path / "few" / "masks").exists() and not (tmp_path / "few" / "meta.json").exists()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(ProcessError, match="broken.mp4"):
        process_subject(broken, subject_inputs["emoca"], tmp_path / "b", masks=few_masks)


def test_mediapipe_masks_keep_the_person_above_the_neck(monkeypatch):
    height = width = 40
    person = np.zeros((height, width), np.float32)
    person[5:, 10:30] = 1.0  # head and torso down to the bottom edge

    class Landmark:
        def __init__(self, y):
            self.x, self.y = 0.5, y

    landmarks = [Landmark(0.5)] * 468
    landmarks[10], landmarks[152] = Landmark(0.15), Landmark(0.55)  # forehead row 6, chin row 22

    solutions = types.SimpleNamespace(
        selfie_segmentation=types.SimpleNamespace(SelfieSegmentation=lambda **_: types.SimpleNamespace(
            process=lambda frame: types.SimpleNamespace(segmentation_mask=person))),
        face_mesh=types.SimpleNamespace(FaceMesh=lambda **_: types.SimpleNamespace(
            process=lambda frame: types.SimpleNamespace(
                multi_face_landmarks=[types.SimpleNamespace(landmark=landmarks)]))))
    monkeypatch.setitem(sys.modules, "mediapipe", types.SimpleNamespace(solutions=solutions))
    mask = mediapipe_head_masker()(np.zeros((height, width, 3), np.uint8))
    neck_limit = 22 + 0.5 * (22 - 6)  # chin + half a face height
    rows = np.nonzero(mask.any(axis=1))[0]
    assert rows.min() == 5 and rows.max() == int(np.ceil(neck_limit)) - 1
    assert set(np.unique(mask)) == {0, 255}


def test_missing_mediapipe_gives_an_install_hint_before_any_output(monkeypatch, subject_inputs, tmp_path):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import fails as if not installed
    with pytest.raises(ProcessError, match=r"masks.*extra"):
        mediapipe_head_masker()
    out = tmp_path / "no_masks"
    with pytest.raises(ProcessError, match=r"masks.*extra.*--masks"):  # no --masks: mediapipe is the default
        process_subject(subject_inputs["video"], subject_inputs["emoca"], out)
    assert not out.exists()


def test_masked_median_matches_nanmedian():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 255, (9, 6, 5, 3)).astype(np.uint8)
    valid = rng.random((9, 6, 5)) < 0.6
    valid[:, 0, 0] = False  # a pixel never seen
    reference = np.where(valid[..., None], values.astype(float), np.nan)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nan_to_num(np.nanmedian(reference, axis=0))
    np.testing.assert_allclose(masked_median(values, valid), expected)
