"""Score a trained body on its subject's validation frames, where a mean PSNR cannot look: the worst frames and
the inside of the mouth.

Usage:
    python -m scene.evaluate -m output/<name> -s data/<subject> --out output/<name>/eval [--device cuda]

Writes into ``--out`` (each file atomically):
* ``metrics.json`` — ``psnr`` and ``ssim`` (means over the validation frames), ``psnr_worst_decile`` (mean
  PSNR of the worst 10% of frames, at least one), ``mouth_psnr`` (PSNR over the mouth-mask pixels of all
  validation frames pooled; only when the subject has ``mouth_masks/``, ``null`` if no frame shows the mouth),
  ``frames``, ``mouth_pixels`` and the ``worst_frames`` (id and PSNR);
* ``per_frame.csv`` — frame, PSNR, SSIM, mouth pixels, mouth squared error, jaw opening;
* ``worst_frames.png`` — a contact sheet of the worst frames, worst first, one row each: ground truth | render |
  error (absolute difference, x4), under a caption with the frame and its PSNR;
* ``psnr_per_frame.png`` — PSNR of every validation frame against its jaw opening.

The body is rendered through :meth:`scene.body.BodyModel.render_frames` (the uint8 frames synthesis gets).
Training validation (``scene.training``) reports the same numbers through :func:`evaluate_body` on an
evenly spaced subset of the validation frames.
"""
from __future__ import annotations

import csv
import heapq
import io
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from scene.body import BodyModel, load_body
from scene.frames import SubjectFrames
from scene.image_metrics import ssim
from scene.subject import Subject, SubjectError
from utils.atomic import atomic_output, save_json
from utils.cli import check_output_path, cli_main, cli_parser
from utils.flame import JAW
from utils.runtime import configure_threads, resolve_device

WORST_FRACTION = 0.1
ERROR_GAIN = 4.0  # the contact sheet's error column shows |render - truth| x 4
CAPTION_HEIGHT = 12  # pixels of caption above each row of the contact sheet


@dataclass
class BodyScores:
    """Per-frame scores of one evaluation and the worst frames' images."""
    ids: list[int] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    mouth_pixels: list[int] = field(default_factory=list)  # pixels inside the mouth mask
    mouth_sse: list[float] = field(default_factory=list)  # squared error summed over those pixels and RGB
    jaw: list[float] = field(default_factory=list)  # jaw opening (radians, the norm of the jaw rotation)
    has_mouth: bool = False
    worst: list = field(default_factory=list)  # heap of (-psnr, id, truth uint8 [H,W,3], render uint8 [H,W,3])

    def metrics(self) -> dict:
        """The numbers of ``metrics.json``."""
        psnr = np.asarray(self.psnr)
        worst_count = max(1, math.ceil(WORST_FRACTION * len(psnr)))
        result = {"frames": len(psnr), "psnr": float(psnr.mean()), "ssim": float(np.mean(self.ssim)),
                  "psnr_worst_decile": float(np.sort(psnr)[:worst_count].mean())}
        if self.has_mouth:
            pixels = int(np.sum(self.mouth_pixels))
            result["mouth_pixels"] = pixels
            result["mouth_psnr"] = (float(-10 * np.log10(max(np.sum(self.mouth_sse) / (3 * pixels), 1e-10)))
                                    if pixels else None)
        ranked = sorted(self.worst, key=lambda item: -item[0])
        result["worst_frames"] = [{"frame": frame, "psnr": -negative} for negative, frame, _, _ in ranked]
        return result


@torch.no_grad()
def evaluate_body(body: BodyModel, frames: SubjectFrames, *, batch_size: int = 8, keep_worst: int = 6,
                  backend: str = "auto") -> BodyScores:
    """Render every frame of ``frames`` with ``body.render_frames`` and score it against the ground truth."""
    was_training = body.training
    body.eval()
    scores = BodyScores(has_mouth=frames.has_mouth)
    for batch in frames.batches(batch_size):
        rendered = body.render_frames(batch["flame"], batch["translation"], backend=backend)  # uint8 [B,H,W,3]
        prediction = rendered.float() / 255.0
        squared = (prediction - batch["image"]).pow(2)  # [B,H,W,3]
        scores.ids += batch["ids"]
        scores.psnr += (-10 * torch.log10(squared.flatten(1).mean(1).clamp_min(1e-10))).tolist()
        scores.ssim += ssim(prediction, batch["image"]).tolist()
        scores.jaw += batch["flame"][:, JAW].norm(dim=-1).tolist()
        if frames.has_mouth:
            scores.mouth_pixels += batch["mouth"].flatten(1).sum(1).long().tolist()
            scores.mouth_sse += (squared * batch["mouth"]).flatten(1).sum(1).double().tolist()
        for offset, (frame, psnr) in enumerate(zip(batch["ids"], scores.psnr[-len(batch["ids"]):])):
            keep_worst_frame(scores, keep_worst, psnr, frame, batch["image"][offset], rendered[offset])
    body.train(was_training)
    return scores


def keep_worst_frame(scores: BodyScores, keep: int, psnr: float, frame: int, truth: torch.Tensor,
                     render: torch.Tensor) -> None:
    """Keep the ``keep`` lowest-PSNR frames' images (a heap on -PSNR: its top is the best kept frame)."""
    full = len(scores.worst) >= keep
    if keep <= 0 or (full and -psnr <= scores.worst[0][0]):
        return  # decided before the images leave the device: most frames are not kept
    item = (-psnr, frame, (truth * 255 + 0.5).to(torch.uint8).cpu().numpy(), render.cpu().numpy())
    (heapq.heapreplace if full else heapq.heappush)(scores.worst, item)


def contact_sheet(scores: BodyScores) -> np.ndarray:
    """uint8 ``[rows*(12+H), 3*W, 3]``: per worst frame (worst first) a caption line (frame id, PSNR) above
    ground truth | render | error x4."""
    rows = []
    for negative, frame, truth, render in sorted(scores.worst, key=lambda item: -item[0]):
        error = np.abs(render.astype(np.float32) - truth.astype(np.float32)) * ERROR_GAIN
        images = np.concatenate([truth, render, error.clip(0, 255).astype(np.uint8)], axis=1)
        caption = Image.new("RGB", (images.shape[1], CAPTION_HEIGHT))
        ImageDraw.Draw(caption).text((2, 0), f"frame {frame}  {-negative:.2f} dB", fill=(255, 255, 0))
        rows += [np.asarray(caption), images]
    return np.concatenate(rows, axis=0)


def plot_psnr_per_frame(path: Path, scores: BodyScores) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(scores.jaw, scores.psnr, s=8)
    ax.set_xlabel("jaw opening (rad)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"{len(scores.psnr)} validation frames")
    ax.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    with atomic_output(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def write_report(out: Path, scores: BodyScores) -> dict:
    """``metrics.json``, ``per_frame.csv``, ``worst_frames.png`` and ``psnr_per_frame.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    metrics = scores.metrics()
    save_json(out / "metrics.json", metrics)
    with atomic_output(out / "per_frame.csv") as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame", "psnr", "ssim", "mouth_pixels", "mouth_sse", "jaw"])
        for row in zip(scores.ids, scores.psnr, scores.ssim, scores.mouth_pixels or [0] * len(scores.ids),
                       scores.mouth_sse or [0.0] * len(scores.ids), scores.jaw):
            writer.writerow([row[0], f"{row[1]:.4f}", f"{row[2]:.5f}", row[3], f"{row[4]:.6g}", f"{row[5]:.4f}"])
    if scores.worst:
        with atomic_output(out / "worst_frames.png") as tmp:
            Image.fromarray(contact_sheet(scores)).save(tmp, format="PNG")
    plot_psnr_per_frame(out / "psnr_per_frame.png", scores)
    return metrics


@cli_main("scene.evaluate")
def main(argv: list[str] | None = None) -> int:
    parser = cli_parser("scene.evaluate", __doc__)
    parser.add_argument("-m", "--model", required=True, help="body model directory or body.pth")
    parser.add_argument("-s", "--subject", required=True, help="the subject folder the body was trained on")
    parser.add_argument("--out", required=True, help="folder for metrics.json and the contact sheet")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--batch_size", type=int, default=8, help="frames rendered per batch")
    parser.add_argument("--worst", type=int, default=6, help="rows of the contact sheet")
    args = parser.parse_args(argv)
    configure_threads()
    out = check_output_path("--out", args.out, directory=True)
    device = resolve_device(args.device)
    subject = Subject(args.subject)
    if not subject.val_ids:
        raise SubjectError(f"{args.subject}: no validation frames to evaluate")
    body = load_body(args.model, device)
    if (subject.width, subject.height) != (body.width, body.height):
        raise SubjectError(f"{args.subject} is {subject.width}x{subject.height} but the body renders "
                           f"{body.width}x{body.height}: not the subject it was trained on")
    frames = SubjectFrames(subject, subject.val_ids, device, mean_translation=body.mean_translation.cpu().numpy(),
                           preload_max_gb=0)
    metrics = write_report(out, evaluate_body(body, frames, batch_size=args.batch_size, keep_worst=args.worst))
    frames.close()
    mouth = metrics.get("mouth_psnr")
    print(f"{metrics['frames']} validation frames: PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f}, "
          f"worst decile {metrics['psnr_worst_decile']:.2f} dB"
          + (f", mouth {mouth:.2f} dB" if mouth is not None else "") + f"; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
