"""Train the brain (Stage 2): a diffusion transformer over listener FLAME windows.

    python train_diffusion.py --config configs/brain_config.yaml --data <corpus> --out <dir> [key=value ...] [--resume]
    python train_diffusion.py --config configs/brain_tiny.yaml --data data/synthetic_dyadic --out output/brain_tiny
    torchrun --nproc_per_node 2 train_diffusion.py --config configs/brain_config.yaml --data <corpus> --out <dir>

``key=value`` overrides any field of :class:`brain.config.BrainConfig` (``train.max_steps=200``,
``model.objective=regression``). Writes ``<dir>/checkpoint.pth`` (the latest; config, normaliser, step,
model, EMA, optimiser — everything ``brain.policy.ListenerPolicy`` and ``--resume`` need),
``<dir>/config.yaml`` and ``<dir>/scalars.csv`` (+ TensorBoard when installed); with ``train.keep_every=N``
also ``<dir>/checkpoint_<step>.pth`` every N steps (slim: for sampling and evaluation, not for resuming). ``--resume`` continues
from ``<dir>/checkpoint.pth``; a step's randomness depends only on (seed, step, rank), so a resumed run
replays what an uninterrupted one would have done. Under ``torchrun`` each process takes its share of
every epoch (DistributedSampler) and rank 0 logs, validates and writes checkpoints.

From Python: ``train(load_config(BrainConfig, "configs/brain_tiny.yaml", ["data=...", "out=..."]))``.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
import sys
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from tqdm import tqdm

from brain.config import BrainConfig
from brain.data import CorpusError, DyadicCorpus
from brain.dataset import WindowDataset, load_split_clips
from brain.denoiser import Conditioning
from brain.diffusion import ListenerDiffusion, build_denoiser_and_diffusion
from brain.normalizer import Normalizer
from utils.atomic import atomic_output
from utils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, slim_payload
from utils.cli import cli_main, cli_parser
from utils.config import ConfigError, config_from_dict, config_to_dict, load_config
from utils.logger import ScalarLogger
from utils.runtime import configure_threads, resolve_device, seed_everything

VALIDATION_SEED = 1234  # the same noise and timesteps at every validation, so the curve is comparable


class Distributed:
    """Rank, world size and device; a single process when not launched by torchrun. A process group the
    caller already initialised is used (and left open); otherwise one is created and closed here."""

    def __init__(self, device_name: str):
        self.owns_group = False
        if dist.is_available() and dist.is_initialized():
            self.world_size, self.rank = dist.get_world_size(), dist.get_rank()
        else:
            self.world_size, self.rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
        self.enabled = self.world_size > 1
        self.device = resolve_device(device_name)  # train.device decides under torchrun too (cpu: gloo)
        if self.enabled:
            if self.device.type == "cuda":
                if self.device.index is not None:
                    raise ConfigError(f"train.device={device_name}: under torchrun each process uses the GPU of its "
                                      f"LOCAL_RANK; set train.device=cuda (or auto) and pick GPUs with "
                                      f"CUDA_VISIBLE_DEVICES")
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(self.device)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
                self.owns_group = True

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group:
            dist.destroy_process_group()


def open_corpus(cfg: BrainConfig) -> DyadicCorpus:
    """The corpus (its meta.json only, no clip is read yet); a labelled corpus's attitude names enter
    ``cfg.model.attitudes`` (unless ``model.use_attitude_labels`` is off)."""
    corpus = DyadicCorpus(cfg.data)
    cfg.model.attitudes = corpus.attitudes if cfg.model.use_attitude_labels else []
    return corpus


def build_data(cfg: BrainConfig, corpus: DyadicCorpus,
               device: torch.device) -> tuple[WindowDataset, WindowDataset, Normalizer]:
    """Train/val window datasets on ``device`` and the normaliser fitted on the training clips."""
    train_clips = load_split_clips(corpus, "train", cfg.model)
    val_clips = load_split_clips(corpus, "val", cfg.model)
    normalizer = Normalizer.fit([c.listener for c in train_clips], [c.speaker_exp for c in train_clips])
    train_set = WindowDataset(train_clips, normalizer, cfg.model, stride=cfg.train.window_stride).to(device)
    val_set = WindowDataset(val_clips, normalizer, cfg.model, stride=cfg.model.chunk_frames,
                            typical_energy=train_set.typical_energy).to(device)
    return train_set, val_set, normalizer.to(device)


def build_optimizer(cfg: BrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms, embeddings and null tokens (1-D parameters)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.train.lr, betas=(0.9, 0.99))


def learning_rate(cfg: BrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to ``lr * min_lr_ratio`` at ``max_steps``."""
    train = cfg.train
    if step < train.warmup_steps:
        return train.lr * (step + 1) / train.warmup_steps
    progress = min(1.0, (step - train.warmup_steps) / max(1, train.max_steps - train.warmup_steps))
    return train.lr * (train.min_lr_ratio + (1 - train.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    decay = min(decay, (1 + step) / (10 + step))  # short runs: the average does not lag behind the start
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)


def autocast_context(cfg: BrainConfig, device: torch.device):
    precision = cfg.train.precision
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()


def train_step(model: torch.nn.Module, diffusion: ListenerDiffusion, batch, optimizer: torch.optim.Optimizer,
               cfg: BrainConfig, step: int, generator: torch.Generator,
               device: torch.device) -> dict[str, torch.Tensor]:
    """One optimiser step on ``batch = (Conditioning, target [B,W,56])``; returns the loss parts (detached
    scalar tensors: reading them syncs the device, so the loop does that only when it logs)."""
    cond, target = batch
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(cfg, step)
    model.train()
    with autocast_context(cfg, device):
        losses = diffusion.loss(model, target, cond, generator=generator)
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
    optimizer.step()
    return {**{k: v.detach() for k, v in losses.items()}, "grad_norm": grad_norm.detach()}


@torch.no_grad()
def validation_loss(model: torch.nn.Module, diffusion: ListenerDiffusion, val_set: WindowDataset,
                    cfg: BrainConfig, device: torch.device) -> dict[str, float]:
    """Conditional loss on a fixed, evenly spaced set of val windows with fixed noise (no dropout)."""
    model.eval()
    count = min(len(val_set), cfg.train.val_windows)
    indices = torch.linspace(0, len(val_set) - 1, count).round().long()
    generator = torch.Generator(device=device).manual_seed(VALIDATION_SEED)
    totals: dict[str, float] = {}
    for batch_indices in indices.split(cfg.train.batch_size):
        cond, target = val_set.gather(batch_indices)
        with autocast_context(cfg, device):
            losses = diffusion.loss(model, target, cond, generator=generator, drop_conditions=False)
        losses["mean_predictor_x0"] = (target ** 2).mean()  # predicting the training mean (0 when normalised)
        for name, value in losses.items():
            totals[name] = totals.get(name, 0.0) + float(value) * len(batch_indices)
    return {f"val_{name}": value / count for name, value in totals.items()}


class WindowBatches:
    """The indices of the training windows of step ``s``: epoch ``s // steps_per_epoch`` reshuffled with the
    seed, this rank's share (DistributedSampler), batch ``s % steps_per_epoch`` — a pure function of the step."""

    def __init__(self, dataset: WindowDataset, cfg: BrainConfig, dist_info: Distributed):
        self.batch_size = cfg.train.batch_size
        self.sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=dist_info.world_size,
                                                           rank=dist_info.rank, shuffle=True,
                                                           seed=cfg.train.seed, drop_last=True)
        if len(self.sampler) < self.batch_size:
            raise CorpusError(f"{cfg.data}: the train split yields {len(dataset)} windows, fewer than one batch of "
                              f"{self.batch_size} per process; use a larger corpus or a smaller train.batch_size")
        self.steps_per_epoch = len(self.sampler) // self.batch_size
        self._epoch, self._order = -1, None

    def indices(self, step: int) -> torch.Tensor:
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._epoch, self._order = epoch, torch.tensor(list(iter(self.sampler)))
        return self._order[position * self.batch_size:(position + 1) * self.batch_size]


@torch.no_grad()
def with_own_history(ema: torch.nn.Module, diffusion: ListenerDiffusion, dataset: WindowDataset, indices: torch.Tensor,
                     cond: Conditioning, target: torch.Tensor, cfg: BrainConfig, step: int,
                     generator: torch.Generator, device: torch.device) -> tuple[Conditioning, torch.Tensor]:
    """``diffusion.own_history`` (scheduled sampling): for that share of the windows, the history's last chunk
    ``[s-C, s)`` becomes the EMA model's sample of it — the window at ``s-C`` sampled from its true history
    and speaker, as a rollout would have emitted it — so training sees histories like the ones the model's
    own output gives it at sampling time, and learns to correct them rather than carry them on. Made every
    ``own_history_every`` steps for that many times the share (see the config); with
    ``own_history_ease_frames`` E the target ``[B,W,56]`` of such a window is moved by the jump ``d`` between
    the own and the true last history frame, by ``d * (1 - (t+1)/(E+1))`` at frame ``t < E``."""
    diff = cfg.diffusion
    if step % diff.own_history_every:
        return cond, target
    chunk = cfg.model.chunk_frames
    previous, exists = dataset.gather_previous(indices, chunk)
    share = min(1.0, diff.own_history * diff.own_history_every)
    chosen = exists & (torch.rand(len(indices), generator=generator, device=device) < share)
    if not chosen.any():
        return cond, target
    sample = cfg.sample
    with autocast_context(cfg, device):
        own = diffusion.sample(ema, previous.map(lambda value: value[chosen]), steps=diff.own_history_steps,
                               sampler=sample.sampler, eta=sample.eta, generator=generator)  # [n,W,56]
    own_chunk = own[:, :chunk].to(cond.history.dtype)  # [n,C,56]
    if diff.own_history_ease_frames > 0:
        jump = own_chunk[:, -1] - cond.history[chosen, -1]  # [n,56]
        frames = torch.arange(target.shape[1], device=target.device, dtype=target.dtype)
        ease = (1 - (frames + 1) / (diff.own_history_ease_frames + 1)).clamp(min=0)  # [W]
        target = target.clone()
        target[chosen] += jump[:, None, :].to(target.dtype) * ease[None, :, None]
    history = cond.history.clone()
    history[chosen, -chunk:] = own_chunk
    return dataclasses.replace(cond, history=history), target


RESUME_MUST_MATCH = ("model", "diffusion")  # sections that define what the saved weights mean


def resume_conflicts(saved: dict, current: dict, sections=RESUME_MUST_MATCH) -> list[str]:
    """``"section.key: old -> new"`` for every setting of ``sections`` that differs between two config dicts."""
    def flat(tree: dict, prefix: str) -> dict:
        items = {}
        for key, value in tree.items():
            items.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
        return items

    changes = []
    for section in sections:
        old, new = flat(saved.get(section, {}), f"{section}."), flat(current.get(section, {}), f"{section}.")
        changes += [f"{key}: {old.get(key, '(absent)')!r} -> {new.get(key, '(absent)')!r}"
                    for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    return changes


def load_resumable_checkpoint(path: Path, cfg: BrainConfig, device: torch.device) -> dict:
    """The checkpoint ``--resume`` continues from: refused when it is a slim export (no optimiser) or when
    this run's ``model.*``/``diffusion.*`` settings differ from those it was trained with."""
    payload = load_checkpoint(path, kind="brain", map_location=device)
    if "optimizer" not in payload:
        raise CheckpointError(f"{path}: a slim checkpoint (utils.checkpoint export) without optimiser state cannot "
                              f"be resumed; resume from the training run's own checkpoint.pth")
    try:  # fields added to the config since the checkpoint was written take their defaults
        saved = config_to_dict(config_from_dict(BrainConfig, payload["config"]))
    except ConfigError as exc:
        raise CheckpointError(f"{path}: its config does not fit this code ({exc})") from exc
    changes = resume_conflicts(saved, config_to_dict(cfg))  # cfg holds the corpus's attitude names by now
    if changes:
        raise CheckpointError(f"{path}: --resume with settings that differ from the checkpoint's ({'; '.join(changes)}); "
                              f"resume with the same {'.*/'.join(RESUME_MUST_MATCH)}.* settings, or start a new run")
    return payload


def save_training_checkpoint(path: Path, cfg: BrainConfig, step: int, model, ema, optimizer, normalizer,
                             val_losses: dict[str, float]) -> None:
    """``path`` (what ``--resume`` reads); at every ``train.keep_every``-th step also its slim copy
    ``checkpoint_<step>.pth`` beside it, which a resumed run that replays the step rewrites identically."""
    payload = {"config": config_to_dict(cfg), "step": step, "model": model.state_dict(), "ema": ema.state_dict(),
               "optimizer": optimizer.state_dict(), "normalizer": normalizer.state_dict(), "val": val_losses}
    save_checkpoint(payload, path, kind="brain")
    if cfg.train.keep_every > 0 and step % cfg.train.keep_every == 0:
        save_checkpoint(slim_payload({**payload, "kind": "brain"}), kept_checkpoint_path(path.parent, step),
                        kind="brain")


def kept_checkpoint_path(out: Path, step: int) -> Path:
    """Where ``train.keep_every`` keeps the slim checkpoint of ``step`` in run folder ``out``."""
    return out / f"checkpoint_{step:06d}.pth"


def train(cfg: BrainConfig, *, resume: bool = False, progress: bool = True) -> Path:
    """Train (or continue) a run in ``cfg.out``; returns the path of the final checkpoint."""
    if not cfg.data:
        raise ConfigError("no corpus given: pass --data <corpus> (or data=<corpus>)")
    if not cfg.out:
        raise ConfigError("no output folder given: pass --out <dir> (or out=<dir>)")
    if cfg.train.keep_every < 0:
        raise ConfigError(f"train.keep_every must be >= 0 (0: keep no step copies), got {cfg.train.keep_every}")
    out = Path(cfg.out)
    checkpoint_path = out / "checkpoint.pth"
    dist_info = Distributed(cfg.train.device)
    device = dist_info.device
    try:
        corpus = open_corpus(cfg)
        # A checkpoint that cannot be resumed is refused before any clip is read.
        payload = load_resumable_checkpoint(checkpoint_path, cfg, device) if resume and checkpoint_path.is_file() else None
        seed_everything(cfg.train.seed)
        train_set, val_set, normalizer = build_data(cfg, corpus, device)
        model, diffusion = build_denoiser_and_diffusion(cfg)
        model, diffusion = model.to(device), diffusion.to(device)
        ema = copy.deepcopy(model).eval().requires_grad_(False)
        optimizer = build_optimizer(cfg, model)
        step, val_losses = 0, {}
        if payload is not None:
            model.load_state_dict(payload["model"])
            ema.load_state_dict(payload["ema"])
            optimizer.load_state_dict(payload["optimizer"])
            normalizer.load_state_dict(payload["normalizer"])
            step, val_losses = int(payload["step"]), dict(payload.get("val", {}))
        elif resume and dist_info.is_main:
            print(f"[train] --resume: no {checkpoint_path} yet, starting from scratch")
        parallel_model = (torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
                          if dist_info.enabled else model)
        batches = WindowBatches(train_set, cfg, dist_info)
        generator = torch.Generator(device=device)
        logger = None
        if dist_info.is_main:
            with atomic_output(out / "config.yaml") as tmp:
                tmp.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
            logger = ScalarLogger(out, resume_step=step if step > 0 else None)
            print(f"[train] {len(train_set)} train windows, {len(val_set)} val windows, "
                  f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, device {device}, "
                  f"{dist_info.world_size} process(es), step {step} -> {cfg.train.max_steps}")
            if step == 0:
                val_losses = validation_loss(ema, diffusion, val_set, cfg, device)
                logger.log(0, **val_losses)
        bar = tqdm(total=cfg.train.max_steps, initial=step, desc="brain", disable=not (progress and dist_info.is_main),
                   dynamic_ncols=True)
        while step < cfg.train.max_steps:
            # A step's randomness is a function of (seed, step, rank): resuming replays it exactly.
            step_seed = (cfg.train.seed * 1_000_003 + step) * dist_info.world_size + dist_info.rank
            torch.manual_seed(step_seed)
            generator.manual_seed(step_seed)
            indices = batches.indices(step)
            cond, target = train_set.gather(indices)
            if cfg.diffusion.own_history > 0:
                cond, target = with_own_history(ema, diffusion, train_set, indices, cond, target, cfg, step,
                                                generator, device)
            losses = train_step(parallel_model, diffusion, (cond, target), optimizer, cfg, step, generator, device)
            update_ema(ema, model, cfg.train.ema_decay, step)
            step += 1
            bar.update(1)
            if dist_info.is_main and (step % cfg.train.log_every == 0 or step == cfg.train.max_steps):
                scalars = {k: float(v) for k, v in losses.items()}
                logger.log(step, lr=learning_rate(cfg, step - 1), **scalars)
                bar.set_postfix(loss=f"{scalars['loss']:.4f}", val=f"{val_losses.get('val_loss', float('nan')):.4f}")
            if dist_info.is_main and (step % cfg.train.val_every == 0 or step == cfg.train.max_steps):
                val_losses = validation_loss(ema, diffusion, val_set, cfg, device)
                logger.log(step, **val_losses)
            if dist_info.is_main and (step % cfg.train.checkpoint_every == 0 or step == cfg.train.max_steps
                                      or (cfg.train.keep_every > 0 and step % cfg.train.keep_every == 0)):
                save_training_checkpoint(checkpoint_path, cfg, step, model, ema, optimizer, normalizer, val_losses)
        bar.close()
        if dist_info.is_main:
            if not checkpoint_path.is_file():  # resumed a finished run, or max_steps=0
                save_training_checkpoint(checkpoint_path, cfg, step, model, ema, optimizer, normalizer, val_losses)
            logger.close()
            print(f"[train] step {step}: val_loss {val_losses.get('val_loss', float('nan')):.4f} "
                  f"(mean predictor x0 {val_losses.get('val_mean_predictor_x0', float('nan')):.4f}); "
                  f"checkpoint {checkpoint_path}")
        dist_info.barrier()
    finally:
        dist_info.close()
    return checkpoint_path


@cli_main("train_diffusion.py")
def main(argv: list[str] | None = None) -> int:
    parser = cli_parser("train_diffusion.py", __doc__, epilog=True)
    parser.add_argument("--config", default="configs/brain_config.yaml", help="YAML preset")
    parser.add_argument("--data", help="dyadic corpus folder (DESIGN.md §3.1)")
    parser.add_argument("--out", help="run folder; holds checkpoint.pth, config.yaml, scalars.csv")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pth")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. train.max_steps=200")
    args = parser.parse_intermixed_args(argv)  # overrides may come before or after --resume
    configure_threads()
    cfg = load_config(BrainConfig, args.config, args.overrides)
    cfg.data = args.data or cfg.data
    cfg.out = args.out or cfg.out
    train(cfg, resume=args.resume)
    return 0


if __name__ == "__main__":
    sys.exit(main())
