"""The synthetic subject: its folder passes the §3.2 reader, and each FLAME dimension moves what it names."""
import json

import numpy as np
import pytest
from scipy.ndimage import maximum_filter

from data_utils import synthetic_semantics as sem
from data_utils.synthetic_subject import (EYE_RADIUS, EYES, MOUTH_HALF_WIDTH, MOUTH_Y, PIVOT, SUBTLE_PARAMS, main,
                                          render_subject, subject_camera, subtle_projection,
                                          synthetic_listener_motion, write_synthetic_subject)
from gaussian_renderer import Camera
from scene.subject import Subject
from utils.flame import FLAME_DIM

SIZE = 96


def pixel_of(point):
    """Canonical head point (rest pose, mean pivot) -> (column, row) in a SIZE image."""
    camera = subject_camera(SIZE)
    x, y, z = (np.asarray(point) + np.asarray(PIVOT))
    return camera.fx * x / z + camera.cx, camera.fy * y / z + camera.cy


def rest(count=1):
    return np.zeros((count, FLAME_DIM), np.float32)


def changed_pixels(first, second):
    """Boolean [H,W]: where two uint8 frames differ by more than rounding."""
    return np.abs(first.astype(int) - second.astype(int)).max(-1) > 2


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("subjects")
    first = write_synthetic_subject(root / "a", frames=12, size=32, seed=3, supersample=1)
    again = write_synthetic_subject(root / "b", frames=12, size=32, seed=3, supersample=1)
    return root, first, again


def test_folder_passes_the_subject_reader(written):
    root, path, _ = written
    subject = Subject(path)
    assert subject.num_frames == 12 and (subject.width, subject.height) == (32, 32)
    assert subject.flame.shape == (12, FLAME_DIM) and subject.flame.dtype == np.float32
    assert subject.translation.shape == (12, 3)
    np.testing.assert_allclose(subject.translation.mean(0), PIVOT, atol=0.01)
    meta = json.loads((path / "meta.json").read_text())
    camera = subject_camera(32)
    assert (meta["fx"], meta["cx"]) == (camera.fx, camera.cx)
    assert subject.has_mouth_masks
    for index in range(subject.num_frames):
        mask = subject.mask(index)
        assert set(np.unique(mask)) <= {0, 255} and set(np.unique(subject.mouth_mask(index))) <= {0, 255}
        assert not ((subject.mouth_mask(index) > 0) & (mask == 0)).any()  # the mouth lies inside the head
        assert 0.1 < (mask > 0).mean() < 0.7  # a head and neck, not nothing and not everything
        assert subject.frame(index).shape == (32, 32, 3)
    assert subject.background().shape == (32, 32, 3) and subject.background().std() > 1
    assert sorted(p.name for p in root.iterdir()) == ["a", "b"]  # no temporary folders left behind


def test_same_seed_same_files_other_seed_other_motion(written):
    _, first, again = written
    for name in ["flame.npy", "translation.npy", "background.png", "frames/000007.png", "masks/000011.png",
                 "mouth_masks/000009.png"]:
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    other = synthetic_listener_motion(12, seed=4)["flame"]
    assert not np.allclose(other, np.load(first / "flame.npy"))


def test_motion_is_smooth_listener_like_and_covers_the_ranges():
    motion = synthetic_listener_motion(1500, seed=0)
    flame = motion["flame"]
    assert flame.shape == (1500, FLAME_DIM) and flame.dtype == np.float32
    np.testing.assert_array_equal(flame, synthetic_listener_motion(1500, seed=0)["flame"])
    assert np.abs(np.diff(flame[:, sem.JAW_OPEN])).max() < 0.08
    assert np.abs(np.diff(flame[:, 50:53], axis=0)).max() < 0.05  # no pose jumps between frames (rad)
    jaw = flame[:, sem.JAW_OPEN]
    assert jaw.min() >= 0 and jaw.max() <= sem.JAW_OPEN_RANGE_RAD[1] and jaw.max() > 0.15
    assert np.abs(flame[:, sem.HEAD_YAW]).max() > 0.1 and flame[:, sem.SMILE].max() > 0.3
    assert flame[:, sem.EYE_CLOSE].max() > 0.5  # blinks happen
    assert flame[:, sem.HEAD_PITCH].std() > 0.01
    # The mouth opens often, through the jaw and through the expression dims (lip parting) alone.
    assert 0.12 < (jaw > 0.1).mean() < 0.5 and (jaw > 0.25).any()
    lip_part = flame[:, sem.SUBTLE_EXP] @ subtle_projection()[:, SUBTLE_PARAMS.index("lip_part")]
    assert ((lip_part > 1.0) & (jaw < 0.03)).mean() > 0.02


@pytest.fixture(scope="module")
def posed():
    """Rest pose and one frame per named change, rendered together."""
    flame = rest(8)
    flame[1, sem.JAW_OPEN] = 0.3
    flame[2, sem.SMILE] = 1.8
    flame[3, sem.BROW_RAISE] = 2.0
    flame[4, sem.EYE_CLOSE] = 1.0
    flame[5, sem.HEAD_YAW] = 0.3
    flame[6, sem.HEAD_ROLL] = 0.25
    flame[7, sem.SUBTLE_EXP.start + 5] = 1.5  # one unnamed dim, a typical amount
    return flame, render_subject(flame, size=SIZE)


def lip_parting(amount):
    """Expression dims that part the lips by ``amount`` units of lip_part, with the jaw closed."""
    direction = subtle_projection()[:, SUBTLE_PARAMS.index("lip_part")]
    flame = rest(1)
    flame[0, sem.SUBTLE_EXP] = amount * direction / (direction @ direction)
    return flame


def test_jaw_opens_the_mouth(posed):
    _, out = posed
    changed = changed_pixels(out["frames"][0], out["frames"][1])
    rows, cols = np.nonzero(changed)
    nose_bottom_row = pixel_of((0, -0.04, -0.09))[1]
    assert changed.sum() > 20 and rows.min() > nose_bottom_row  # only the mouth and chin move
    col, row = pixel_of((0, MOUTH_Y + 0.006, -0.08))
    window = np.s_[int(row) - 1:int(row) + 2, int(col) - 1:int(col) + 2]
    # The opened mouth shows its dark interior where skin and lips were.
    assert out["frames"][1][window].mean() < 0.7 * out["frames"][0][window].mean()


def test_mouth_masks_mark_the_inside_of_the_open_mouth(posed):
    _, out = posed
    mouth = out["mouth_masks"] > 0
    assert not mouth[0].any() and not mouth[3].any() and not mouth[5].any()  # closed at rest, brows, a turn
    assert mouth[1].sum() > 15  # the jaw opened
    rows, cols = np.nonzero(mouth[1])
    centre_col, seam_row = pixel_of((0, MOUTH_Y, -0.08))
    half_width = pixel_of((MOUTH_HALF_WIDTH, MOUTH_Y, -0.08))[0] - centre_col
    assert np.abs(cols + 0.5 - centre_col).max() < 1.3 * half_width and rows.min() >= seam_row - 2
    # Inside the mask the open mouth is darker on average than the closed lips and skin it replaced.
    assert out["frames"][1][mouth[1]].mean() < out["frames"][0][mouth[1]].mean() - 10


def mouth_close_up(size=48):
    """A camera looking closely at the mouth at rest (a 7.8 cm wide field): sub-millimetre openings show."""
    focal = 6.0 * size
    depth = PIVOT[2] - 0.08
    return Camera(width=size, height=size, fx=focal, fy=focal, cx=size / 2,
                  cy=size / 2 - focal * (MOUTH_Y + PIVOT[1]) / depth)


def test_the_mouth_opens_through_expression_dims_with_the_jaw_closed():
    smile = rest(1)
    smile[0, sem.SMILE] = 1.8
    flame = np.concatenate([rest(1), lip_parting(0.4), lip_parting(3.0), smile])
    out = render_subject(flame, camera=mouth_close_up())
    pixels = (out["mouth_masks"] > 0).sum((1, 2))
    assert pixels[0] == 0 and pixels[1] == 0  # closed at rest and below LIP_PART_START
    assert pixels[2] > 20 and pixels[3] > 5  # parted lips, and a broad smile over the teeth
    assert (flame[:, sem.JAW_OPEN] == 0).all()


def test_expressions_move_their_own_regions(posed):
    _, out = posed
    rest_frame = out["frames"][0]
    eye_row = pixel_of(EYES[0])[1]
    mouth_row = pixel_of((0, MOUTH_Y, -0.08))[1]

    brows = np.nonzero(changed_pixels(rest_frame, out["frames"][3]))[0]
    assert len(brows) > 5 and brows.max() < eye_row  # brows move, all above the eyes

    eyes = np.nonzero(changed_pixels(rest_frame, out["frames"][4]))
    assert len(eyes[0]) > 4
    eye_pixels = np.array([pixel_of(eye) for eye in EYES])  # [2, (col,row)]
    distance = np.min(np.hypot(eyes[1][:, None] + 0.5 - eye_pixels[None, :, 0],
                               eyes[0][:, None] + 0.5 - eye_pixels[None, :, 1]), axis=1)
    eye_radius_pixels = subject_camera(SIZE).fx * EYE_RADIUS / (PIVOT[2] + EYES[0][2])
    assert distance.max() < 1.5 * eye_radius_pixels  # only the eyes change when they close

    smile = changed_pixels(rest_frame, out["frames"][2])
    corner_col, corner_row = pixel_of((MOUTH_HALF_WIDTH, MOUTH_Y, -0.07))
    corner = smile[int(corner_row) - 2:int(corner_row) + 3, int(corner_col) - 2:int(corner_col) + 3]
    assert corner.any()  # the mouth corner moves
    assert np.nonzero(smile)[0].min() > eye_row - 3  # nothing above the eyes changes

    subtle = changed_pixels(rest_frame, out["frames"][7])
    assert 0 < subtle.sum() < 0.2 * (out["masks"][0] > 0).sum()  # small shape changes, not a new face
    assert mouth_row > eye_row


def test_rotation_moves_the_head_not_the_torso_or_background(posed):
    _, out = posed
    for index in (5, 6):
        # Away from both masks (one pixel further, for anti-aliased edges) nothing changes.
        either = maximum_filter((out["masks"][0] > 0) | (out["masks"][index] > 0), size=3)
        outside = ~either
        np.testing.assert_array_equal(out["frames"][0][outside], out["frames"][index][outside])
        assert changed_pixels(out["frames"][0], out["frames"][index]).sum() > 100
    # Roll about +z turns the top of the head towards +x by about f * 0.175 sin(roll) / z.
    top_rows = slice(int(pixel_of((0, -0.16, 0))[1]), int(pixel_of((0, -0.14, 0))[1]) + 1)
    centre_x = [np.nonzero(out["masks"][i][top_rows])[1].mean() for i in (0, 6)]
    camera = subject_camera(SIZE)
    expected = camera.fx * 0.15 * np.sin(0.25) / PIVOT[2]
    assert 0.6 * expected < centre_x[1] - centre_x[0] < 1.4 * expected
    # The neck does not turn: the mask below the chin is the same.
    chin_row = int(pixel_of((0, 0.08, 0))[1])
    np.testing.assert_array_equal(out["masks"][0][chin_row:], out["masks"][5][chin_row:])


def test_bad_inputs_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="flame must be"):
        render_subject(np.zeros((3, 50), np.float32))
    with pytest.raises(ValueError, match="translation must be"):
        render_subject(rest(2), np.zeros((3, 3)))
    assert main(["--out", str(tmp_path / "bad"), "--frames", "1"]) == 2
    assert "--frames" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.gpu
def test_cuda_render_matches_cpu():
    flame = synthetic_listener_motion(6, seed=2)
    on_cpu = render_subject(flame["flame"], flame["translation"], size=SIZE)
    on_gpu = render_subject(flame["flame"], flame["translation"], size=SIZE, device="cuda")
    difference = np.abs(on_cpu["frames"].astype(int) - on_gpu["frames"].astype(int))
    assert difference.mean() < 0.05 and (difference > 2).mean() < 1e-3  # rounding, not different pictures
    assert (on_cpu["masks"] != on_gpu["masks"]).mean() < 1e-3
    assert (on_cpu["mouth_masks"] != on_gpu["mouth_masks"]).mean() < 1e-3
