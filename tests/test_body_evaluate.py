"""python -m scene.evaluate: its numbers equal a hand computation on a tiny subject; its refusals are one line."""
import csv
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from scene.body import load_body
from scene.evaluate import main as evaluate_main
from scene.image_metrics import ssim
from test_body_model import tiny_body
from utils.checkpoint import save_checkpoint
from utils.flame import FLAME_DIM, JAW

SIZE, FRAMES = 24, 14
VAL = [2, 5, 6, 8, 9, 10, 11, 12, 13, 0, 7, 4]  # 12 validation frames, so the worst decile is two frames


def write_tiny_subject(root, body, *, mouth_masks=True):
    """A §3.2 folder whose frames are the body's own renders plus noise of a different strength per frame,
    and mouth masks of a few pixels in most frames (none in two)."""
    rng = np.random.default_rng(0)
    flame = (rng.standard_normal((FRAMES, FLAME_DIM)) * 0.2).astype(np.float32)
    with torch.no_grad():
        clean = body.render_frames(torch.from_numpy(flame)).numpy().astype(float)
    (root / "frames").mkdir(parents=True)
    (root / "masks").mkdir()
    if mouth_masks:
        (root / "mouth_masks").mkdir()
    for i in range(FRAMES):
        noisy = np.clip(clean[i] + rng.normal(0, 2 + 3 * i, clean[i].shape), 0, 255).round().astype(np.uint8)
        Image.fromarray(noisy).save(root / "frames" / f"{i:06d}.png")
        Image.fromarray(np.full((SIZE, SIZE), 255, np.uint8)).save(root / "masks" / f"{i:06d}.png")
        if mouth_masks:
            mouth = np.zeros((SIZE, SIZE), np.uint8)
            if i % 7:
                mouth[12:15, 8:8 + i % 7] = 255
            Image.fromarray(mouth).save(root / "mouth_masks" / f"{i:06d}.png")
    camera = body.camera
    meta = {"fps": 25, "width": SIZE, "height": SIZE, "fx": camera.fx, "fy": camera.fy, "cx": camera.cx,
            "cy": camera.cy}
    (root / "meta.json").write_text(json.dumps(meta))
    np.save(root / "flame.npy", flame)
    (root / "splits.json").write_text(json.dumps({"train": [1, 3], "val": VAL}))
    return root, flame


@pytest.fixture()
def model_and_subject(tmp_path):
    body = tiny_body()
    save_checkpoint({**body.to_payload(), "step": 0}, tmp_path / "model" / "body.pth", kind="body")
    root, flame = write_tiny_subject(tmp_path / "subject", body)
    return body, tmp_path / "model", root, flame


def test_metrics_equal_a_hand_computation(model_and_subject, tmp_path):
    _, model, subject, flame = model_and_subject
    assert evaluate_main(["-m", str(model), "-s", str(subject), "--out", str(tmp_path / "eval"), "--device", "cpu",
                          "--batch_size", "5", "--worst", "3"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())

    # By hand: render each validation frame alone, per-frame PSNR in float64, the mouth pooled over frames.
    body = load_body(model)  # as saved (its plate is stored as uint8)
    psnrs, ssims, mouth_error, mouth_pixels = [], [], 0.0, 0
    for i in VAL:
        with torch.no_grad():
            render = body.render_frames(torch.from_numpy(flame[i:i + 1]))[0].numpy().astype(np.float64) / 255
        truth = np.asarray(Image.open(subject / "frames" / f"{i:06d}.png"), np.float64) / 255
        psnrs.append(-10 * math.log10(np.mean((render - truth) ** 2)))
        ssims.append(float(ssim(torch.tensor(render[None], dtype=torch.float32),
                                torch.tensor(truth[None], dtype=torch.float32))[0]))
        mouth = np.asarray(Image.open(subject / "mouth_masks" / f"{i:06d}.png")) > 127
        mouth_error += float(np.sum((render - truth)[mouth] ** 2))
        mouth_pixels += int(mouth.sum())
    worst_two = sorted(psnrs)[:2]  # ceil(10% of 12) = 2
    assert metrics["frames"] == 12
    assert metrics["psnr"] == pytest.approx(np.mean(psnrs), abs=1e-4)
    assert metrics["ssim"] == pytest.approx(np.mean(ssims), abs=1e-5)
    assert metrics["psnr_worst_decile"] == pytest.approx(np.mean(worst_two), abs=1e-4)
    assert metrics["mouth_pixels"] == mouth_pixels
    assert metrics["mouth_psnr"] == pytest.approx(-10 * math.log10(mouth_error / (3 * mouth_pixels)), abs=1e-4)
    # The noise grows with the frame index, so the worst frames are the last ones.
    assert [row["frame"] for row in metrics["worst_frames"]] == [13, 12, 11]
    sheet = np.asarray(Image.open(tmp_path / "eval" / "worst_frames.png"))
    assert sheet.shape == (3 * (12 + SIZE), 3 * SIZE, 3)  # three captioned rows: truth | render | error
    worst_truth = np.asarray(Image.open(subject / "frames" / "000013.png"))
    np.testing.assert_array_equal(sheet[12:12 + SIZE, :SIZE], worst_truth)  # the worst frame comes first
    with open(tmp_path / "eval" / "per_frame.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["frame"]) for row in rows] == VAL
    assert [float(row["psnr"]) for row in rows] == pytest.approx(psnrs, abs=1e-3)  # each row its own frame's
    assert [float(row["ssim"]) for row in rows] == pytest.approx(ssims, abs=1e-4)
    assert sum(int(row["mouth_pixels"]) for row in rows) == mouth_pixels
    assert float(rows[0]["jaw"]) == pytest.approx(float(np.linalg.norm(flame[VAL[0], JAW])), abs=1e-4)
    assert (tmp_path / "eval" / "psnr_per_frame.png").is_file()


def test_without_mouth_masks_there_is_no_mouth_psnr(tmp_path):
    body = tiny_body()
    save_checkpoint({**body.to_payload(), "step": 0}, tmp_path / "model" / "body.pth", kind="body")
    subject, _ = write_tiny_subject(tmp_path / "subject", body, mouth_masks=False)
    assert evaluate_main(["-m", str(tmp_path / "model"), "-s", str(subject), "--out", str(tmp_path / "eval"),
                          "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert "mouth_psnr" not in metrics and metrics["frames"] == 12


def test_refusals_are_one_line_and_write_nothing(model_and_subject, tmp_path, capsys):
    _, model, subject, _ = model_and_subject
    (tmp_path / "file").write_text("not a folder")
    cases = [(["--out", str(tmp_path / "file" / "eval")], "is a file, so nothing can be written below it"),
             (["--out", str(tmp_path / "file")], "is a file; a folder is written here"),
             (["-s", str(tmp_path / "nowhere"), "--out", str(tmp_path / "a")], "subject folder does not exist"),
             (["-m", str(tmp_path / "nothing"), "--out", str(tmp_path / "b")], "no such checkpoint")]
    for extra, message in cases:
        argv = ["-m", str(model), "-s", str(subject), "--device", "cpu", *extra]
        assert evaluate_main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("scene.evaluate: error:") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
