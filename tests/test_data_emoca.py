"""EMOCA outputs -> speaker/listener codes; gap filling and refusals; code resampling; camera conversion."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from data_utils.emoca_io import (EmocaError, find_emoca_sequence, load_emoca_codes, main, read_emoca_sequence,
                                 weak_perspective_to_translation)
from fixtures import EMOCA_MODEL_NAME, emoca_per_video_dir, emoca_results_dir, smooth_codes, write_emoca_frames
from data_utils.resample import fill_missing, missing_runs, resample_codes, resampled_length
from utils.flame import EXP, FLAME_DIM, GLOBAL_ROT, JAW


def test_per_frame_folders_give_listener_and_speaker_layout(tmp_path):
    exp, pose = smooth_codes(40)
    write_emoca_frames(emoca_results_dir(tmp_path, "clip"), exp, pose)
    sequence = load_emoca_codes(tmp_path, "clip")
    assert sequence.listener.shape == (40, FLAME_DIM) and sequence.speaker.shape == (40, 50)
    np.testing.assert_array_equal(sequence.listener[:, EXP], exp)
    np.testing.assert_array_equal(sequence.listener[:, GLOBAL_ROT], pose[:, :3])
    np.testing.assert_array_equal(sequence.listener[:, JAW], pose[:, 3:])
    assert sequence.present.all() and sequence.notes == []


def test_every_folder_tree_the_emoca_demo_writes_is_found(tmp_path):
    exp, pose = smooth_codes(6)
    relative_run = write_emoca_frames(emoca_results_dir(tmp_path / "relative", "clip"), exp, pose)
    absolute_run = write_emoca_frames(emoca_per_video_dir(tmp_path / "per_video", "clip"), exp, pose)
    assert find_emoca_sequence(tmp_path / "relative", "clip") == relative_run  # --output_folder given as root
    assert find_emoca_sequence(tmp_path / "relative" / EMOCA_MODEL_NAME, "clip") == relative_run  # or below it
    assert find_emoca_sequence(tmp_path / "per_video", "clip") == absolute_run  # <root>/<stem>/<model>/ (DIM's)
    np.testing.assert_array_equal(load_emoca_codes(tmp_path / "per_video", "clip").exp, exp)


def test_missing_frames_are_interpolated_and_reported(tmp_path):
    exp, pose = smooth_codes(30)
    pose[:, :3] = 0
    pose[:, 1] = np.linspace(0.0, 0.58, 30)  # a steady head turn about one axis
    missing = [4, 12, 13, 14]
    folder = write_emoca_frames(tmp_path / "codes", exp, pose, missing=missing)
    sequence = read_emoca_sequence(folder, num_frames=32, max_missing_fraction=0.2)  # +2 trailing frames without a face
    assert sequence.num_frames == 32
    assert (~sequence.present).sum() == 6 and sequence.report()["longest_gap"] == 3
    np.testing.assert_allclose(sequence.exp[4], (exp[3] + exp[5]) / 2, atol=1e-6)
    np.testing.assert_allclose(sequence.pose[12:15, 1], pose[12:15, 1], atol=1e-6)  # slerp about one axis is linear
    np.testing.assert_allclose(sequence.exp[30:], np.repeat(exp[29:30], 2, 0))  # trailing frames hold the last one
    assert "interpolated 6 frame(s)" in sequence.notes[0]


def test_too_many_missing_frames_or_long_gaps_are_refused(tmp_path):
    exp, pose = smooth_codes(40)
    sparse = write_emoca_frames(tmp_path / "sparse", exp, pose, missing=range(0, 40, 3))
    with pytest.raises(EmocaError, match=r"sparse.*have no face.*max_missing_fraction"):
        read_emoca_sequence(sparse, max_missing_fraction=0.2)
    gap = write_emoca_frames(tmp_path / "gap", exp, pose, missing=range(10, 20))
    with pytest.raises(EmocaError, match=r"gap of 10 frames.*frames 10\.\.19"):
        read_emoca_sequence(gap, max_missing_fraction=0.5, max_gap_frames=5)
    assert read_emoca_sequence(gap, max_missing_fraction=0.5, max_gap_frames=10).num_frames == 40
    with pytest.raises(EmocaError, match="only 30"):
        read_emoca_sequence(gap, max_missing_fraction=0.5, max_gap_frames=10, num_frames=30)


def test_bad_codes_are_refused_naming_the_file(tmp_path):
    exp, pose = smooth_codes(10)
    exp[6, 3] = np.nan
    folder = write_emoca_frames(tmp_path / "nan", exp, pose)
    with pytest.raises(EmocaError, match=r"000007_000/exp\.npy: NaN"):
        read_emoca_sequence(folder)
    wide = write_emoca_frames(tmp_path / "wide", np.zeros((5, 100), np.float32), np.zeros((5, 6), np.float32))
    with pytest.raises(EmocaError, match=r"exp\.npy: expected 50 values"):
        read_emoca_sequence(wide)
    with pytest.raises(EmocaError, match="no EMOCA output for video 'absent'"):
        find_emoca_sequence(tmp_path, "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmocaError, match="not an EMOCA output"):
        read_emoca_sequence(tmp_path / "empty")


def test_stacked_arrays_and_split_pose_files(tmp_path):
    exp, pose = smooth_codes(20)
    present = np.ones(20, dtype=bool)
    present[7] = False
    np.savez(tmp_path / "video.npz", exp=exp, pose=pose, present=present)
    sequence = load_emoca_codes(tmp_path, "video")
    np.testing.assert_allclose(sequence.exp[7], (exp[6] + exp[8]) / 2, atol=1e-6)
    np.savez(tmp_path / "short.npz", exp=exp, pose=pose[:10])
    with pytest.raises(EmocaError, match="disagree in length"):
        load_emoca_codes(tmp_path, "short")
    frame = tmp_path / "split" / "000001_000"
    frame.mkdir(parents=True)
    np.save(frame / "exp.npy", exp[0])
    np.save(frame / "globalpose.npy", pose[0, :3])
    np.save(frame / "jawpose.npy", pose[0, 3:])
    np.testing.assert_array_equal(read_emoca_sequence(tmp_path / "split").pose[0], pose[0])


def test_resampling_30_to_25_fps_keeps_duration_and_motion():
    assert resampled_length(300, 30, 25) == 250 and resampled_length(75, 30, 25) == 62
    t = np.arange(90) / 30
    angle = 0.02 + 0.4 * t  # turning at a constant rate about y
    codes = np.zeros((90, FLAME_DIM), np.float32)
    codes[:, 0] = 2 * t
    codes[:, GLOBAL_ROT.start + 1] = angle
    out = resample_codes(codes, 30, 25, (GLOBAL_ROT, JAW))
    t25 = np.arange(75) / 25
    assert out.shape == (75, FLAME_DIM)
    np.testing.assert_allclose(out[:, 0], 2 * t25, atol=1e-5)
    np.testing.assert_allclose(out[:, GLOBAL_ROT.start + 1], 0.02 + 0.4 * t25, atol=1e-5)


def test_rotation_gaps_are_filled_on_the_sphere():
    # Across a 170-degree turn, averaging axis-angle vectors would leave the arc; slerp stays on it.
    before = Rotation.from_euler("y", 80, degrees=True).as_rotvec()
    after = Rotation.from_euler("y", -90, degrees=True).as_rotvec()
    codes = np.stack([before, np.zeros(3), after]).astype(np.float32)
    filled = fill_missing(codes, np.array([True, False, True]), (slice(0, 3),))
    expected = Rotation.from_euler("y", -5, degrees=True)
    assert (Rotation.from_rotvec(filled[1]) * expected.inv()).magnitude() < 1e-4
    assert missing_runs(np.array([True, False, False, True, False])) == [(1, 2), (4, 1)]


def test_weak_perspective_translation_reproduces_emoca_projection():
    fx, fy, cx, cy = 900.0, 900.0, 256.0, 256.0
    cam = np.array([[8.5, 0.012, -0.03], [10.0, -0.02, 0.01]], np.float32)
    crop = np.array([[300.0, 220.0, 180.0], [250.0, 260.0, 150.0]], np.float32)
    translation = weak_perspective_to_translation(cam, crop, fx=fx, fy=fy, cx=cx, cy=cy)
    for (scale, tx, ty), (crop_x, crop_y, size), (x, y, z) in zip(cam, crop, translation):
        for point in (np.zeros(3), np.array([0.03, 0.05, 0.0])):  # FLAME origin and a point 3/5 cm off it
            # EMOCA: normalised crop coords x = s (P_x + t_x), y = -s (P_y + t_y) -> pixels
            u_emoca = crop_x + scale * (point[0] + tx) * size / 2
            v_emoca = crop_y - scale * (point[1] + ty) * size / 2
            # pinhole with the translation; FLAME y up -> camera y down
            camera_point = np.array([x + point[0], y - point[1], z])
            u = fx * camera_point[0] / camera_point[2] + cx
            v = fy * camera_point[1] / camera_point[2] + cy
            assert abs(u - u_emoca) < 1e-2 and abs(v - v_emoca) < 1e-2
    with pytest.raises(EmocaError, match="positive"):
        weak_perspective_to_translation(-cam, crop, fx=fx, fy=fy, cx=cx, cy=cy)


def test_cli_writes_codes_or_exits_nonzero(tmp_path, capsys):
    exp, pose = smooth_codes(12)
    folder = write_emoca_frames(tmp_path / "codes", exp, pose, missing=[3])
    assert main([str(folder), "--out", str(tmp_path / "listener.npy")]) == 0
    assert np.load(tmp_path / "listener.npy").shape == (12, FLAME_DIM)
    assert main([str(folder), "--kind", "speaker", "--out", str(tmp_path / "speaker.npy")]) == 0
    assert np.load(tmp_path / "speaker.npy").shape == (12, 50)
    assert main([str(folder), "--max_missing_fraction", "0.01", "--out", str(tmp_path / "no.npy")]) == 2
    assert "max_missing_fraction" in capsys.readouterr().err and not (tmp_path / "no.npy").exists()
