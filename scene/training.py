"""Training one subject's body: config, data, optimisers, losses, validation, checkpoints and the loop.

    from scene.training import BodyTrainingConfig, train
    cfg = load_config(BodyTrainingConfig, "configs/body_tiny.yaml", ["subject=data/synth", "model_dir=out/b"])
    train(cfg)                         # what ``python train_body.py`` runs

The schedule is a list of phases (``train.phases``): each runs for a fraction of ``train.max_steps`` and
names the parameter groups it updates (``face``, ``mouth``, ``deform``). The presets first fit the
canonical Gaussians with the deformation frozen, then train everything jointly. gsplat's ``DefaultStrategy``
densifies and prunes each Gaussian set (``densify.*``).

The model directory receives ``body.pth`` (kind "body": the model and the training state to resume from,
written atomically at every save, so it is always a usable model), ``config.yaml``, ``scalars.csv``,
``val_preview.png`` and, at the end, ``summary.json``.
"""
from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from tqdm import tqdm

from gaussian_renderer import resolve_backend
from scene.body import CHECKPOINT_NAME, LAYERS, BodyModel, BodyModelConfig
from scene.gaussian_sets import GAUSSIAN_KEYS
from scene.image_metrics import psnr, ssim
from scene.subject import Subject
from utils.atomic import atomic_output, save_json
from utils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from utils.config import ConfigError, config_to_dict
from utils.logger import ScalarLogger
from utils.runtime import resolve_device, seed_everything

PARAMETER_GROUPS = ("face", "mouth", "deform")


@dataclass
class PhaseConfig:
    name: str = "joint"
    fraction: float = 1.0  # share of train.max_steps spent in this phase
    groups: list[str] = field(default_factory=lambda: list(PARAMETER_GROUPS))  # what this phase updates


@dataclass
class LearningRates:
    means: float = 1e-3  # in head radii per step (the head's size sets the scale of the scene)
    scales: float = 5e-3
    quats: float = 1e-3
    opacities: float = 5e-2
    colors: float = 5e-3
    deform_mlp: float = 1e-3
    deform_planes: float = 5e-3
    final_factor: float = 0.1  # means and deformation decay exponentially to this factor by max_steps


@dataclass
class LossConfig:
    l1: float = 0.8
    dssim: float = 0.2
    alpha: float = 0.1  # L1 between rendered head coverage and the head+neck mask
    offset: float = 0.01  # mean squared position offset, in head radii², plus log-scale offsets²


@dataclass
class DensifyConfig:
    enabled: bool = True
    start_step: int = 500
    stop_fraction: float = 0.6  # no refinement after this share of max_steps
    every: int = 100
    grad_threshold: float = 2e-4
    prune_opacity: float = 0.005
    max_gaussians: int = 120000  # per set; refinement pauses for a set above this


@dataclass
class BodyRunConfig:
    """The ``train`` section: how long, on what, how often to log, validate and save."""
    max_steps: int = 30000
    max_minutes: float = 0.0  # wall-clock budget; 0 = none. Stops cleanly and saves when reached
    batch_size: int = 1
    seed: int = 0
    device: str = "auto"
    backend: str = "auto"  # renderer backend: auto | gsplat | reference
    workers: int = 0  # DataLoader worker processes decoding PNGs
    cache_frames: int = 256  # decoded frames kept per process (uint8)
    log_every: int = 50
    val_every: int = 1000
    val_frames: int = 32  # evenly spaced validation frames per evaluation
    save_every: int = 2000
    tf32: bool = True
    phases: list[PhaseConfig] = field(default_factory=lambda: [
        PhaseConfig("canonical", 0.1, ["face", "mouth"]), PhaseConfig("joint", 0.9, list(PARAMETER_GROUPS))])


@dataclass
class BodyTrainingConfig:
    subject: str = ""
    model_dir: str = ""
    model: BodyModelConfig = field(default_factory=BodyModelConfig)
    train: BodyRunConfig = field(default_factory=BodyRunConfig)
    lr: LearningRates = field(default_factory=LearningRates)
    loss: LossConfig = field(default_factory=LossConfig)
    densify: DensifyConfig = field(default_factory=DensifyConfig)


# --- data ---------------------------------------------------------------------------------------------
class FrameDataset(torch.utils.data.Dataset):
    """Subject frames by position in ``ids``: flame ``[56]``, translation ``[3]``, image ``[H,W,3]``, mask ``[H,W]``."""

    def __init__(self, subject: Subject, ids: list[int], mean_translation: np.ndarray):
        self.subject, self.ids = subject, list(ids)
        self.mean_translation = np.asarray(mean_translation, np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, position: int) -> dict:
        index = self.ids[position]
        translation = (self.subject.translation[index] if self.subject.translation is not None
                       else self.mean_translation)
        return {"index": index, "flame": torch.from_numpy(self.subject.flame[index].copy()),
                "translation": torch.as_tensor(translation, dtype=torch.float32),
                "image": torch.from_numpy(self.subject.frame(index).copy()),
                "mask": torch.from_numpy(self.subject.mask(index).copy())}


def to_device(batch: dict, device: torch.device) -> dict:
    """uint8 images -> float [B,H,W,3] in [0,1]; masks -> float [B,H,W,1] in {0,1}."""
    return {"flame": batch["flame"].to(device), "translation": batch["translation"].to(device),
            "image": batch["image"].to(device).float() / 255.0,
            "mask": (batch["mask"].to(device) > 127).float().unsqueeze(-1)}


def training_batches(cfg: BodyTrainingConfig, subject: Subject, model: BodyModel, device: torch.device, step: int):
    """An endless iterator over shuffled training batches (DataLoader with ``train.workers`` processes)."""
    dataset = FrameDataset(subject, subject.train_ids, model.mean_translation.cpu().numpy())
    generator = torch.Generator().manual_seed(cfg.train.seed + step)
    sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=10 ** 9, generator=generator)
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.train.batch_size, sampler=sampler,
                                         num_workers=cfg.train.workers, pin_memory=device.type == "cuda",
                                         persistent_workers=cfg.train.workers > 0)
    while True:
        yield from loader


# --- building -----------------------------------------------------------------------------------------
def head_radius(model: BodyModel) -> float:
    """Robust size of the canonical head (metres): 90th percentile distance from the centroid."""
    means = model.gaussians["face"]["means"].detach()
    return float((means - means.mean(0)).norm(dim=-1).quantile(0.9))


def build_model(cfg: BodyTrainingConfig, subject: Subject, device: torch.device) -> BodyModel:
    return BodyModel.from_subject(cfg.model, subject, seed=cfg.train.seed).to(device)


def build_optimizers(cfg: BodyTrainingConfig, model: BodyModel, scale: float) -> dict[str, dict]:
    """One Adam per Gaussian parameter per set (the layout gsplat's strategy edits) and one for the deformation."""
    lr = cfg.lr
    rates = {"means": lr.means * scale, "scales": lr.scales, "quats": lr.quats, "opacities": lr.opacities,
             "colors": lr.colors}
    optimizers: dict[str, dict] = {}
    for name in LAYERS:
        params = model.gaussians[name]
        optimizers[name] = {key: torch.optim.Adam([params[key]], lr=rates[key], eps=1e-15) for key in GAUSSIAN_KEYS}
    planes = [model.deform.triplane.planes]
    mlp = [p for n, p in model.deform.named_parameters() if not n.startswith("triplane.")]
    optimizers["deform"] = {"all": torch.optim.Adam([{"params": planes, "lr": lr.deform_planes},
                                                     {"params": mlp, "lr": lr.deform_mlp}])}
    for group_optimizers in optimizers.values():
        for optimizer in group_optimizers.values():
            for group in optimizer.param_groups:
                group["initial_lr"] = group["lr"]
    return optimizers


def build_strategy(cfg: BodyTrainingConfig):
    """gsplat's DefaultStrategy when densification is on, else None. It reads the per-layer ``info`` of either
    backend (gsplat's packed meta on CUDA, the reference rasteriser's unpacked one on CPU)."""
    if not cfg.densify.enabled:
        return None
    from gsplat.strategy import DefaultStrategy

    densify = cfg.densify
    return DefaultStrategy(prune_opa=densify.prune_opacity, grow_grad2d=densify.grad_threshold,
                           refine_start_iter=densify.start_step,
                           refine_stop_iter=int(densify.stop_fraction * cfg.train.max_steps),
                           refine_every=densify.every, reset_every=10 ** 9,  # no opacity reset: frames are dense
                           key_for_gradient="means2d")


def phase_at(cfg: BodyTrainingConfig, step: int) -> PhaseConfig:
    boundary = 0.0
    for phase in cfg.train.phases:
        boundary += phase.fraction * cfg.train.max_steps
        if step < boundary:
            return phase
    return cfg.train.phases[-1]


def set_learning_rates(optimizers: dict[str, dict], cfg: BodyTrainingConfig, step: int) -> None:
    """Exponential decay of the position and deformation rates (3DGS-style); others stay constant."""
    decay = cfg.lr.final_factor ** min(1.0, step / max(1, cfg.train.max_steps))
    decayed = [optimizers[name]["means"] for name in LAYERS] + [optimizers["deform"]["all"]]
    for optimizer in decayed:
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * decay


# --- one step -----------------------------------------------------------------------------------------
def compute_loss(cfg: BodyTrainingConfig, out: dict, batch: dict, scale: float) -> dict[str, torch.Tensor]:
    color = out["color"]  # [B,H,W,3]
    l1 = (color - batch["image"]).abs().mean()
    dssim = 1 - ssim(color, batch["image"]).mean()
    alpha = (out["alpha"] - batch["mask"]).abs().mean()
    offsets = out["offsets"]
    offset = offsets["means"].pow(2).mean() / scale ** 2 + offsets["scales"].pow(2).mean()
    total = cfg.loss.l1 * l1 + cfg.loss.dssim * dssim + cfg.loss.alpha * alpha + cfg.loss.offset * offset
    return {"loss": total, "l1": l1, "dssim": dssim, "alpha_loss": alpha, "offset": offset}


def train_step(cfg: BodyTrainingConfig, model: BodyModel, batch: dict, optimizers: dict[str, dict], strategy,
               strategy_states: dict, step: int, backend: str, scale: float) -> dict[str, float]:
    """Render the batch, take one optimiser step on the phase's groups, densify (gsplat), return scalars."""
    phase = phase_at(cfg, step)
    out = model(batch["flame"], batch["translation"], backend=backend)
    if strategy is not None:
        for name, layer_out in zip(LAYERS, out["layers"]):
            strategy.step_pre_backward(model.gaussians[name], optimizers[name], strategy_states[name], step,
                                       layer_out["info"])
    losses = compute_loss(cfg, out, batch, scale)
    losses["loss"].backward()
    if not torch.isfinite(losses["loss"]):
        raise FloatingPointError(f"step {step}: loss is {losses['loss'].item()}; lower the learning rates")
    for group in PARAMETER_GROUPS:
        for optimizer in optimizers[group].values():
            if group in phase.groups:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    if strategy is not None:
        for name, layer_out in zip(LAYERS, out["layers"]):
            if model.gaussians[name]["means"].shape[0] <= cfg.densify.max_gaussians:
                strategy.step_post_backward(model.gaussians[name], optimizers[name], strategy_states[name], step,
                                            layer_out["info"], packed=layer_out["info"]["packed"])
    return {key: float(value.detach()) for key, value in losses.items()}


# --- validation ---------------------------------------------------------------------------------------
def validation_ids(subject: Subject, count: int) -> list[int]:
    ids = subject.val_ids or subject.train_ids[-1:]
    picks = np.linspace(0, len(ids) - 1, min(count, len(ids))).round().astype(int)
    return [ids[i] for i in sorted(set(picks.tolist()))]


@torch.no_grad()
def evaluate_body(model: BodyModel, subject: Subject, ids: list[int], backend: str, *,
                  batch_size: int = 4) -> tuple[dict[str, float], np.ndarray]:
    """Mean PSNR/SSIM over ``ids`` and a preview strip (prediction above target) of up to 4 frames."""
    dataset = FrameDataset(subject, ids, model.mean_translation.cpu().numpy())
    scores = {"psnr": [], "ssim": []}
    preview = []
    for start in range(0, len(ids), batch_size):
        batch = to_device(torch.utils.data.default_collate([dataset[i] for i in
                                                            range(start, min(len(ids), start + batch_size))]),
                          model.device)
        color = model(batch["flame"], batch["translation"], backend=backend)["color"].clamp(0, 1)
        scores["psnr"] += psnr(color, batch["image"]).tolist()
        scores["ssim"] += ssim(color, batch["image"]).tolist()
        if len(preview) < 4:
            for pred, target in zip(color, batch["image"]):
                preview.append(torch.cat([pred, target], dim=0))
    strip = (torch.cat(preview[:4], dim=1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    return {key: float(np.mean(values)) for key, values in scores.items()}, strip


def mean_frame_baseline(subject: Subject, ids: list[int], *, max_frames: int = 200) -> dict[str, float]:
    """Val PSNR/SSIM of predicting every frame as the mean training frame: what a model must beat."""
    picks = np.linspace(0, len(subject.train_ids) - 1, min(max_frames, len(subject.train_ids))).astype(int)
    mean = np.mean([subject.frame(subject.train_ids[i]).astype(np.float32) for i in picks], axis=0) / 255.0
    mean = torch.from_numpy(mean)[None]
    targets = torch.stack([torch.from_numpy(subject.frame(i).copy()).float() / 255.0 for i in ids])
    prediction = mean.expand_as(targets)
    return {"psnr": float(psnr(prediction, targets).mean()), "ssim": float(ssim(prediction, targets).mean())}


def _rss_bytes(pid: int) -> int:
    """Resident set size of one process from /proc (Linux); 0 when unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def memory_report(device: torch.device) -> dict[str, float]:
    """Peak RSS of the trainer, current RSS of trainer + DataLoader workers, peak GPU memory (GB)."""
    children_file = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    children = [int(pid) for pid in children_file.read_text().split()] if children_file.exists() else []
    report = {"ram_peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2,
              "ram_with_workers_gb": sum(_rss_bytes(pid) for pid in [os.getpid(), *children]) / 1024 ** 3}
    if device.type == "cuda":
        report["gpu_peak_gb"] = torch.cuda.max_memory_allocated(device) / 1024 ** 3
    return report


# --- the state of a run, and its checkpoint ------------------------------------------------------------
@dataclass
class TrainingRun:
    """What the loop advances and a checkpoint keeps: the model, its optimisers, densification state, step."""
    model: BodyModel
    optimizers: dict[str, dict]
    strategy: object | None  # gsplat DefaultStrategy, or None
    strategy_states: dict[str, dict]
    scale: float  # head radius (metres): the unit of the position learning rate and offset loss
    step: int = 0
    elapsed_before: float = 0.0  # seconds trained before this process (resume)
    started: float = field(default_factory=time.perf_counter)
    history: list[dict] = field(default_factory=list)  # one row per validation

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started


def start_run(cfg: BodyTrainingConfig, subject: Subject, device: torch.device, *, resume: bool) -> TrainingRun:
    """A fresh run from the subject, or the run saved in ``<model_dir>/body.pth`` (its model config wins)."""
    payload = None
    if resume:
        path = Path(cfg.model_dir) / CHECKPOINT_NAME
        payload = load_checkpoint(path, kind="body")
        if "train_state" not in payload:
            raise CheckpointError(f"{path}: has no training state to resume from")
        model = BodyModel.from_payload(payload, device)
    else:
        model = build_model(cfg, subject, device)
    scale = head_radius(model)
    optimizers = build_optimizers(cfg, model, scale)
    strategy = build_strategy(cfg)
    strategy_states = {name: strategy.initialize_state(scene_scale=scale) if strategy else {} for name in LAYERS}
    if strategy is not None:
        for name in LAYERS:
            strategy.check_sanity(model.gaussians[name], optimizers[name])
    run = TrainingRun(model, optimizers, strategy, strategy_states, scale)
    if payload is None:
        return run
    train_state = payload["train_state"]
    for group, opts in train_state["optimizers"].items():
        for key, state in opts.items():
            optimizers[group][key].load_state_dict(state)
    if strategy is not None:
        for name, saved in train_state["strategy"].items():
            strategy_states[name].update({k: v.to(device) if torch.is_tensor(v) else v for k, v in saved.items()})
    run.step = int(payload["step"])
    run.elapsed_before = float(train_state.get("elapsed_s", 0.0))
    return run


def save_body(cfg: BodyTrainingConfig, run: TrainingRun) -> None:
    payload = run.model.to_payload()
    payload.update({
        "config": config_to_dict(cfg), "step": run.step,
        "train_state": {"optimizers": {group: {key: opt.state_dict() for key, opt in opts.items()}
                                       for group, opts in run.optimizers.items()},
                        "strategy": {name: {key: value for key, value in state.items() if value is not None}
                                     for name, state in run.strategy_states.items()},
                        "elapsed_s": run.elapsed()},
    })
    save_checkpoint(payload, Path(cfg.model_dir) / CHECKPOINT_NAME, kind="body")


def validate(run: TrainingRun, subject: Subject, val_ids: list[int], backend: str, device: torch.device,
             logger: ScalarLogger, model_dir: Path) -> None:
    """Score the validation frames, log them with the Gaussian count and memory, refresh the preview."""
    run.model.eval()
    scores, strip = evaluate_body(run.model, subject, val_ids, backend)
    run.model.train()
    row = {"step": run.step, "wall_s": run.elapsed(), "val_psnr": scores["psnr"], "val_ssim": scores["ssim"],
           "gaussians": sum(run.model.num_gaussians().values()), **memory_report(device)}
    run.history.append(row)
    logger.log(run.step, **{k: v for k, v in row.items() if k != "step"})
    with atomic_output(model_dir / "val_preview.png") as tmp:
        Image.fromarray(strip).save(tmp, format="PNG")


def check_config(cfg: BodyTrainingConfig, resume: bool) -> Path:
    """The model directory, after refusing a config that cannot run (before any work)."""
    if not cfg.subject or not cfg.model_dir:
        raise ConfigError("both the subject folder (-s) and the model directory (-m) are required")
    for phase in cfg.train.phases:
        unknown = sorted(set(phase.groups) - set(PARAMETER_GROUPS))
        if unknown:
            raise ConfigError(f"train.phases '{phase.name}': unknown group(s) {unknown}; known: {PARAMETER_GROUPS}")
    model_dir = Path(cfg.model_dir)
    if not resume and (model_dir / CHECKPOINT_NAME).exists():
        raise FileExistsError(f"{model_dir / CHECKPOINT_NAME} exists: pass --resume to continue it, "
                              f"or choose another model directory")
    return model_dir


def training_device(cfg: BodyTrainingConfig) -> torch.device:
    device = resolve_device(cfg.train.device)
    if device.type == "cuda" and cfg.train.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


# --- the loop -----------------------------------------------------------------------------------------
def train(cfg: BodyTrainingConfig, *, resume: bool = False, progress: bool = True) -> Path:
    """Train (or resume) the body described by ``cfg``; returns the model directory."""
    model_dir = check_config(cfg, resume)
    seed_everything(cfg.train.seed)
    device = training_device(cfg)
    subject = Subject(cfg.subject, cache_frames=cfg.train.cache_frames)
    subject.frame(subject.train_ids[0])  # fail now, not mid-run, when images do not match meta.json
    run = start_run(cfg, subject, device, resume=resume)
    backend = resolve_backend(cfg.train.backend, device)  # the renderer decides what "auto" means

    model_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(model_dir / "config.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    logger = ScalarLogger(model_dir, resume_step=run.step if resume else None, tensorboard=False)
    val_ids = validation_ids(subject, cfg.train.val_frames)
    baseline = mean_frame_baseline(subject, val_ids)
    if run.step == 0:
        logger.log(0, val_psnr_mean_frame=baseline["psnr"], val_ssim_mean_frame=baseline["ssim"])
    batches = training_batches(cfg, subject, run.model, device, run.step)

    run.model.train()
    bar = tqdm(total=cfg.train.max_steps, initial=run.step, desc="body", disable=not progress, dynamic_ncols=True)
    budget_s = cfg.train.max_minutes * 60
    while run.step < cfg.train.max_steps and not (budget_s and run.elapsed() >= budget_s):
        batch = to_device(next(batches), device)
        set_learning_rates(run.optimizers, cfg, run.step)
        scalars = train_step(cfg, run.model, batch, run.optimizers, run.strategy, run.strategy_states, run.step,
                             backend, run.scale)
        run.step += 1
        bar.update(1)
        if run.step % cfg.train.log_every == 0:
            logger.log(run.step, **scalars, gaussians=sum(run.model.num_gaussians().values()))
            bar.set_postfix(loss=f"{scalars['loss']:.4f}", phase=phase_at(cfg, run.step - 1).name)
        if run.step % cfg.train.val_every == 0:
            validate(run, subject, val_ids, backend, device, logger, model_dir)
        if run.step % cfg.train.save_every == 0:
            save_body(cfg, run)
    bar.close()

    if not run.history or run.history[-1]["step"] != run.step:
        validate(run, subject, val_ids, backend, device, logger, model_dir)
    save_body(cfg, run)
    summary = {"steps": run.step, "wall_s": run.elapsed(), "baseline_mean_frame": baseline,
               "final": run.history[-1], "history": run.history, "gaussians": run.model.num_gaussians(),
               "device": str(device), "backend": backend}
    save_json(model_dir / "summary.json", summary)
    logger.close()
    if progress:
        print_summary(summary)
    return model_dir


def print_summary(summary: dict) -> None:
    print(f"\n{'step':>7} {'wall s':>8} {'val PSNR':>9} {'val SSIM':>9} {'Gaussians':>10} {'GPU GB':>7} "
          f"{'RAM GB':>7} {'+workers':>9}")
    for row in summary["history"]:
        print(f"{row['step']:>7} {row['wall_s']:>8.1f} {row['val_psnr']:>9.2f} {row['val_ssim']:>9.4f} "
              f"{row['gaussians']:>10} {row.get('gpu_peak_gb', float('nan')):>7.2f} {row['ram_peak_gb']:>7.2f} "
              f"{row['ram_with_workers_gb']:>9.2f}")
    base = summary["baseline_mean_frame"]
    print(f"mean-training-frame baseline on the same val frames: PSNR {base['psnr']:.2f}, SSIM {base['ssim']:.4f}")
