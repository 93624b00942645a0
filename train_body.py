"""Train one subject's body (Stage 1): canonical Gaussians + FLAME deformation, fitted to a §3.2 subject folder.

Usage:
    python train_body.py -s data/<subject> -m output/<name> [--config configs/body.yaml] [key=value ...] [--resume]

    python train_body.py -s data/synth -m output/body_tiny --config configs/body_tiny.yaml   # CPU, minutes
    python train_body.py -s data/synth -m output/body --config configs/body.yaml train.max_minutes=6
    python train_body.py -s data/synth -m output/body --resume train.max_steps=40000        # continue

``key=value`` overrides any field of :class:`scene.training.BodyTrainingConfig`. ``--resume`` rebuilds the
model from ``<model_dir>/body.pth`` (its saved model config wins over ``model.*``), restores the optimisers
and densification state, and continues the step count; the other sections (``train``, ``lr``, ``loss``,
``densify``) come from the command line as usual.

The model directory receives ``body.pth`` (kind "body": model + the training state to resume from, written
atomically at every save, so it is always a usable model), ``config.yaml``, ``scalars.csv`` (loss, val
PSNR/SSIM against wall time, Gaussian counts, memory), ``val_preview.png`` and, at the end, ``summary.json``.
``scene.body.load_body(<model dir>)`` and ``python -m scene.render -m <model dir>`` take the directory.
The training itself (config, losses, optimisers, validation, the loop) is :mod:`scene.training`.
"""
from __future__ import annotations

import sys

from scene.training import BodyTrainingConfig, train
from utils.cli import cli_main, cli_parser
from utils.config import load_config
from utils.runtime import configure_threads


@cli_main("train_body.py")
def main(argv: list[str] | None = None) -> int:
    parser = cli_parser("train_body.py", __doc__)
    parser.add_argument("-s", "--subject", required=True, help="subject folder (DESIGN.md §3.2)")
    parser.add_argument("-m", "--model_dir", required=True, help="output model directory")
    parser.add_argument("--config", default=None, help="YAML preset, e.g. configs/body.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from <model_dir>/body.pth")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. train.max_steps=200")
    args = parser.parse_args(argv)
    configure_threads()
    cfg = load_config(BodyTrainingConfig, args.config, args.overrides)
    cfg.subject, cfg.model_dir = args.subject, args.model_dir
    train(cfg, resume=args.resume)
    return 0


if __name__ == "__main__":
    sys.exit(main())
