"""A probe of the one lever against the slow-band shortfall no per-window loss can see: fine-tune a trained brain
on its own rollouts with the energy score of their slow course (CPU-scale experiment, docs/RESULTS.md).

    PYTHONPATH=. python benchmarks/rollout_energy_probe.py --checkpoint run/checkpoint.pth --data world \\
        --out tuned.pth [--steps 300] [--seconds 6] [--samples 4] [--evaluations 6] [--weight 2] [--lr 1e-4] \
        [--device auto]

Each step takes one training clip's span of ``--seconds``, rolls the model out ``--samples`` times from the
clip's start as a stream does (its memory and history its own output), and scores the rollouts' slow course —
the listener's 2.5-s moving average, every 12th frame — against the true listener's with the energy score

    ES = mean_k |X_k − Y| − ½ · mean_{k≠k'} |X_k − X_k'|        (Gneiting & Raftery 2007)

a proper scoring rule: its expectation is least when the samples are drawn from the truth's own distribution,
so it rewards as much spread as the truth has and no more (no oracle needed: one true listener per clip). The
gradient reaches each chunk through its own sampling (``--evaluations`` network evaluations) but not through the
history a chunk hands the next (truncated) unless ``--through_history``, and the window loss of
training is kept beside it (``--weight`` scales the energy score against it; ``--seam_weight`` adds how much the
rollout's chunk joins are rougher than its insides). Writes the tuned weights as a slim checkpoint
(``utils.checkpoint export``'s layout), which every sampling and evaluation tool loads as it loads the original.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from brain.data import DyadicCorpus  # noqa: E402
from brain.dataset import WindowDataset, load_split_clips  # noqa: E402
from brain.policy import ListenerPolicy  # noqa: E402
from brain.diffusion import ListenerDiffusion  # noqa: E402
from brain.metrics import chunk_join_stencils  # noqa: E402
from utils.checkpoint import load_checkpoint, save_checkpoint, slim_payload  # noqa: E402
from utils.runtime import resolve_device  # noqa: E402
from utils.flame import FPS  # noqa: E402

SLOW_FRAMES, SLOW_STRIDE = 62, 12  # a 2.5-s moving average (the slow band's < 0.4 Hz), read every 0.48 s
sample_with_grad = ListenerDiffusion.sample.__wrapped__  # the sampler without its no_grad


def slow_course(motion: torch.Tensor) -> torch.Tensor:
    """``[K,T,56]`` normalised -> ``[K, F]``: the moving average over SLOW_FRAMES, every SLOW_STRIDE-th frame."""
    kernel = torch.ones(motion.shape[-1], 1, SLOW_FRAMES, dtype=motion.dtype, device=motion.device) / SLOW_FRAMES
    smooth = torch.nn.functional.conv1d(motion.transpose(1, 2), kernel, groups=motion.shape[-1])  # [K,56,T']
    return smooth[..., ::SLOW_STRIDE].flatten(1)


def energy_score(samples: torch.Tensor, truth: torch.Tensor, *, spread_term: bool = True) -> torch.Tensor:
    """``samples [K,F]``, ``truth [F]`` -> the energy score (lower is better), per feature dimension; without
    ``spread_term`` only its accuracy term, the mean distance to the truth (the control: it rewards no spread)."""
    scale = samples.shape[1] ** 0.5
    accuracy = (samples - truth).norm(dim=1).mean()
    if not spread_term:
        return accuracy / scale
    spread = torch.cdist(samples, samples).sum() / (len(samples) * (len(samples) - 1))
    return (accuracy - 0.5 * spread) / scale


def seam_excess(motion: torch.Tensor, chunk_frames: int) -> torch.Tensor:
    """``[K,T,56]`` -> how far the rollout's mean second-difference norm on stencils straddling a chunk join
    exceeds its mean elsewhere, as a share of the latter (``relu(seam ratio − 1)``, brain.metrics.seam_ratio's
    measure, differentiable: 0 for a seamless rollout)."""
    norms = motion.diff(n=2, dim=1).norm(dim=-1)  # [K,T-2], entry i centred on frame i+1
    crosses = torch.from_numpy(chunk_join_stencils(norms.shape[1], chunk_frames)).to(motion.device)
    return torch.relu(norms[:, crosses].mean() / norms[:, ~crosses].mean() - 1)


def rollout(policy: ListenerPolicy, clip, frames: int, samples: int, evaluations: int, seed: int, *,
            through_history: bool = False) -> torch.Tensor:
    """``[K,frames,56]`` normalised listeners streamed from the clip's start, each chunk's sampling differentiable;
    with ``through_history`` the gradient also flows into the history and memory each chunk hands the next."""
    stream = policy.stream(num_samples=samples, seed=seed, steps=evaluations, attitude=clip.attitude)
    stream.receive(clip.speaker_audio[:frames], clip.speaker_exp[:frames])
    chunks = []
    while stream.emitted < frames:
        emit = min(policy.chunk_frames, frames - stream.emitted)
        cond, noise, step_noise = stream.window_inputs()
        window = sample_with_grad(policy.diffusion, policy.denoiser, cond, noise=noise, step_noise=step_noise,
                                  **stream.options)
        stream.keep(window if through_history else window.detach(), emit)  # the next window's history and memory
        chunks.append(window[:, :emit])
    return torch.cat(chunks, dim=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="the corpus the checkpoint was trained on")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--evaluations", type=int, default=6, help="network evaluations per window in the rollouts")
    parser.add_argument("--weight", type=float, default=2.0, help="energy score weight against the window loss")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--through_history", action="store_true",
                        help="back-propagate through the history and memory a chunk hands the next (slower)")
    parser.add_argument("--seam_weight", type=float, default=0.0,
                        help="weight of the rollout's chunk-join excess (seam_excess) in the loss")
    parser.add_argument("--no_spread", action="store_true",
                        help="the control: the score's accuracy term alone (no reward for spread)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    device = resolve_device(args.device)
    policy = ListenerPolicy.from_checkpoint(args.checkpoint, device=device)
    cfg = policy.cfg
    clips = load_split_clips(DyadicCorpus(args.data), "train", cfg.model)
    # the training windows, as training gathers them (normalised on the CPU, then moved)
    windows = WindowDataset(clips, copy.deepcopy(policy.normalizer).cpu(), cfg.model,
                            stride=cfg.train.window_stride).to(device)
    frames = int(args.seconds * FPS)
    clips = [clip for clip in clips if clip.num_frames >= frames]
    if frames < SLOW_FRAMES or not clips:
        parser.error(f"--seconds {args.seconds:g}: a rollout must span the slow course's {SLOW_FRAMES / FPS:g}-s "
                     f"window and fit in a training clip of {args.data}")
    policy.denoiser.train()
    optimizer = torch.optim.Adam(policy.denoiser.parameters(), lr=args.lr)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    bar = tqdm(range(args.steps), desc="rollout energy", file=sys.stdout)
    for step in bar:
        clip = clips[int(rng.integers(len(clips)))]
        motion = rollout(policy, clip, frames, args.samples, args.evaluations, seed=step,
                         through_history=args.through_history)
        truth = policy.normalizer.normalize_listener(torch.from_numpy(clip.listener[:frames]).to(device))[None]
        score = energy_score(slow_course(motion), slow_course(truth)[0], spread_term=not args.no_spread)
        cond, target = windows.gather(torch.from_numpy(rng.integers(len(windows), size=cfg.train.batch_size)))
        window_loss = policy.diffusion.loss(policy.denoiser, target, cond, generator=generator)["loss"]
        loss = window_loss + args.weight * score
        if args.seam_weight:
            loss = loss + args.seam_weight * seam_excess(motion, policy.chunk_frames)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.denoiser.parameters(), cfg.train.grad_clip)
        optimizer.step()
        bar.set_postfix(energy=f"{float(score.detach()):.4f}", window=f"{float(window_loss.detach()):.4f}")
    tuned = slim_payload(load_checkpoint(args.checkpoint, kind="brain"))  # config, normaliser, step: the original's
    tuned["model"] = {key: value.detach().cpu() for key, value in policy.denoiser.state_dict().items()}
    save_checkpoint(tuned, args.out, kind="brain")
    print(f"wrote {args.out} after {args.steps} rollout steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
