"""Render a trained body from FLAME vectors, or export its Gaussians as a 3DGS PLY.

Usage:
    python -m scene.render -m output/body --flame listener.npy --out frames/            # one PNG per row
    python -m scene.render -m output/body --flame motion.npy --sample 2 --out frames/   # sample 2 of [K,T,56]
    python -m scene.render -m output/body --flame F.npy --translation T.npy --out frames/ --device cuda
    python -m scene.render -m output/body --ply head.ply                                # canonical Gaussians
    python -m scene.render -m output/body --ply posed.ply --flame F.npy --frame 10      # posed by row 10

``--flame`` is a float32 ``[N,56]`` ``.npy`` (DESIGN.md §2), or the ``[K,N,56]`` samples ``brain.sample
--num_samples K`` writes, with ``--sample k`` choosing one; ``--translation`` ``[N,3]`` (default: the
subject's mean). Frames are written as ``000000.png``, ... at the subject's resolution into a folder that
appears only when complete (an existing folder is replaced). ``-m`` takes a model directory or its
``body.pth``. Inputs and outputs are checked before the body is loaded: a bad one exits 2 at once.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from scene.body import load_body
from scene.ply import write_gaussians_ply
from scene.subject import frame_name
from utils.arrays import check_array, load_npy
from utils.atomic import atomic_output
from utils.cli import check_output_path, cli_main, cli_parser
from utils.errors import InputError, UsageError
from utils.flame import FLAME_DIM
from utils.runtime import configure_threads, resolve_device


def read_motion(flame_path: str, translation_path: str | None = None, *,
                sample: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``[N,56]`` FLAME and optional ``[N,3]`` translation, validated (widths, NaN, equal lengths).

    A ``[K,N,56]`` file (K samples of one clip) needs ``sample``, the one to take; a ``[N,56]`` file refuses it.
    """
    motion = load_npy(flame_path)
    source = flame_path
    if motion.ndim == 3:
        if sample is None:
            raise UsageError(f"--flame {flame_path} holds {len(motion)} samples {list(motion.shape)} ([K,T,56]); "
                             f"choose one with --sample k (0..{len(motion) - 1})")
        if not 0 <= sample < len(motion):
            raise UsageError(f"--sample {sample} is outside --flame {flame_path}: {list(motion.shape)} holds samples "
                             f"0..{len(motion) - 1}")
        motion, source = motion[sample], f"{flame_path} sample {sample}"
    elif sample is not None:
        raise UsageError(f"--sample {sample} needs a [K,T,56] file of samples, but --flame {flame_path} is "
                         f"{list(motion.shape)}")
    flame = check_array(motion, FLAME_DIM, source)
    if len(flame) == 0:
        raise InputError(f"{flame_path}: no frames")
    if translation_path is None:
        return flame, None
    translation = check_array(load_npy(translation_path), 3, translation_path)
    if len(translation) != len(flame):
        raise InputError(f"{translation_path} has {len(translation)} rows but {flame_path} has {len(flame)}")
    return flame, translation


def render_to_folder(body, flame: np.ndarray, translation: np.ndarray | None, out: str | Path, *,
                     batch_size: int = 16, progress: bool = True) -> Path:
    """Render every row of ``flame`` to ``out/000000.png``, ...; the folder appears when complete."""
    with atomic_output(out, directory=True) as tmp:
        for start in tqdm(range(0, len(flame), batch_size), desc="render", unit="batch", disable=not progress):
            stop = min(len(flame), start + batch_size)
            flame_batch = torch.from_numpy(flame[start:stop]).to(body.device)
            translation_batch = (None if translation is None
                                 else torch.from_numpy(translation[start:stop]).to(body.device))
            frames = body.render_frames(flame_batch, translation_batch).cpu().numpy()
            for offset, frame in enumerate(frames):
                Image.fromarray(frame).save(tmp / frame_name(start + offset), compress_level=1)
    return Path(out)


@cli_main("scene.render")
def main(argv: list[str] | None = None) -> int:
    parser = cli_parser("scene.render", __doc__)
    parser.add_argument("-m", "--model", required=True, help="body model directory or body.pth")
    parser.add_argument("--flame", help="float32 [N,56] .npy of FLAME vectors, or [K,N,56] with --sample")
    parser.add_argument("--sample", type=int, help="with a [K,N,56] --flame: render sample k (0-based)")
    parser.add_argument("--translation", help="float32 [N,3] .npy of head translations (default: mean)")
    parser.add_argument("--out", help="folder of PNG frames to write")
    parser.add_argument("--ply", help="write the Gaussians to this PLY file instead of rendering")
    parser.add_argument("--frame", type=int, help="with --ply and --flame: pose the Gaussians by this row")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--batch_size", type=int, default=16, help="frames rendered per batch")
    args = parser.parse_args(argv)
    configure_threads()
    if args.ply is None and (args.flame is None or args.out is None):
        parser.error("rendering needs --flame and --out (or use --ply to export Gaussians)")
    if args.frame is not None and (args.ply is None or args.flame is None):
        parser.error("--frame needs --ply and --flame")
    if args.sample is not None and args.flame is None:
        parser.error("--sample needs --flame")
    if args.ply is not None:
        check_output_path("--ply", args.ply)
    else:
        check_output_path("--out", args.out, directory=True)
    flame, translation = (read_motion(args.flame, args.translation, sample=args.sample) if args.flame
                          else (None, None))
    if args.frame is not None and not 0 <= args.frame < len(flame):
        raise UsageError(f"--frame {args.frame} is outside {args.flame} ({len(flame)} rows)")
    body = load_body(args.model, resolve_device(args.device))
    if args.ply is not None:
        pose = None if args.frame is None else torch.from_numpy(flame[args.frame]).to(body.device)
        shift = (None if args.frame is None or translation is None
                 else torch.from_numpy(translation[args.frame]).to(body.device))
        gaussians = body.export_gaussians(pose, shift)
        write_gaussians_ply(args.ply, **{key: value.cpu().numpy() for key, value in gaussians.items()})
        print(f"wrote {len(gaussians['means'])} Gaussians to {args.ply}")
    else:
        render_to_folder(body, flame, translation, args.out, batch_size=args.batch_size)
        print(f"wrote {len(flame)} frames of {body.width}x{body.height} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
