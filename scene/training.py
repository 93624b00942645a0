"""Training one subject's body: config, data order, optimisers, losses, validation, checkpoints and the loop.

    from scene.training import BodyTrainingConfig, train
    cfg = load_config(BodyTrainingConfig, "configs/body_tiny.yaml", ["subject=data/synth", "model_dir=out/b"])
    train(cfg)                         # what ``python train_body.py`` runs

The schedule is a list of phases (``train.phases``): each runs for a fraction of the run and names the
parameter groups it updates (``face``, ``mouth``, ``deform``). The presets first fit the canonical Gaussians
with the deformation frozen, then train everything jointly. gsplat's ``DefaultStrategy`` densifies and
prunes each Gaussian set (``densify.*``). The run's *progress* (0..1) drives the phases, the learning-rate
decay and the densification window: ``step / max_steps``, or, with ``train.time_schedule`` and a
``train.max_minutes`` budget, whichever of that and ``elapsed / budget`` is further — so a capped run still
anneals and ends with a finished model whatever the machine's speed. The loop stops early enough to
validate and save before the budget runs out.

Exact resume: a step's randomness (which frames, gsplat's split noise) is a function of (seed, step) only,
and a checkpoint holds the optimisers, the densification state, the head scale and the validation history,
so a run killed between checkpoints and resumed with the same config ends with the weights an uninterrupted
run has (with the step schedule; a time schedule depends on the clock by design).

With mouth masks (``<subject>/mouth_masks``) three more losses teach the two layers the open mouth: extra
L1 inside the mouth (``loss.mouth_l1``: the mouth is a small part of the image, so a whole-image loss barely
sees it), the face layer's coverage there (``loss.face_alpha_in_mouth``: the face must open over the inside
of the lips) and the mouth layer's missing coverage there (``loss.mouth_alpha``).

The model directory receives ``body.pth`` (kind "body": the model and the training state to resume from,
written atomically at every save, so it is always a usable model), ``config.yaml``, ``scalars.csv``,
``val_preview.png`` (the worst validation frames: truth | render | error) and, at the end, ``summary.json``.
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
from scene.evaluate import contact_sheet, evaluate_body
from scene.frames import SubjectFrames
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
    fraction: float = 1.0  # share of the run (progress) spent in this phase
    groups: list[str] = field(default_factory=lambda: list(PARAMETER_GROUPS))  # what this phase updates


@dataclass
class LearningRates:
    means: float = 1e-3  # in head radii per step (the head's size sets the scale of the scene)
    scales: float = 5e-3
    quats: float = 1e-3
    opacities: float = 5e-2
    colors: float = 5e-3
    jaw: float = 1e-2  # the logits of each Gaussian's share of the jaw rotation
    deform_mlp: float = 1e-3
    deform_planes: float = 5e-3
    # The code-linear appearance basis (model.appearance_blend): its outputs are colour logits and shares of
    # order 1, not centimetres, so it learns 10x faster than the MLP (docs/BODY.md: 1x barely closes a lid,
    # 30x is unstable across seeds)
    appearance_basis: float = 1e-2
    jaw_pivot: float = 1e-4  # metres per step
    final_factor: float = 0.1  # means and deformation decay exponentially to this factor by the end


@dataclass
class LossConfig:
    l1: float = 0.8
    dssim: float = 0.2
    alpha: float = 0.1  # L1 between rendered head coverage and the head+neck mask
    offset: float = 0.01  # mean squared position offset, in head radii², plus log-scale offsets²
    appearance_offset: float = 0.001  # mean squared opacity and colour logit offsets
    # With mouth masks (sums over the mouth-mask pixels, averaged over all pixels like l1 and alpha):
    mouth_l1: float = 4.0  # extra L1 of the composite inside the mouth: a mouth pixel counts 1 + 4/0.8 times
    face_alpha_in_mouth: float = 1.0  # the face layer's coverage inside the mouth (it must open there)
    mouth_alpha: float = 1.0  # 1 - the mouth layer's coverage inside the mouth


@dataclass
class DensifyConfig:
    enabled: bool = True
    start_step: int = 500
    stop_fraction: float = 0.6  # no refinement after this share of the run (progress)
    every: int = 100
    grad_threshold: float = 2e-4
    prune_opacity: float = 0.005
    max_gaussians: int = 80000  # face set; its refinement pauses above this
    max_mouth_gaussians: int = 10000  # mouth set


@dataclass
class BodyRunConfig:
    """The ``train`` section: how long, on what, how often to log, validate and save."""
    max_steps: int = 30000
    max_minutes: float = 0.0  # wall-clock budget; 0 = none. Stops in time to validate and save
    time_schedule: bool = False  # progress = max(step / max_steps, elapsed / budget) (needs max_minutes)
    batch_size: int = 1
    seed: int = 0
    device: str = "auto"
    backend: str = "auto"  # renderer backend: auto | gsplat | reference
    preload_max_gb: float = 8.0  # keep the training frames on the device when they fit, else decode per batch
    load_threads: int = 8  # threads decoding PNGs (no worker processes)
    cache_frames: int = 256  # decoded frames the subject reader keeps (when not preloaded)
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


# --- the data order -----------------------------------------------------------------------------------
class EpochOrder:
    """The training-frame positions of step ``s``: sample ``i = s * B + j`` is position ``i % N`` of epoch
    ``i // N``'s permutation, seeded by (seed, epoch) — a pure function of the step, so a resumed run reads
    the frames an uninterrupted one would have. Permutations live on ``device`` (one copy per epoch), so a
    step's positions cost no host-device copy."""

    def __init__(self, count: int, batch_size: int, seed: int, device: torch.device):
        self.count, self.batch_size, self.seed, self.device = count, batch_size, seed, device
        self._permutations: dict[int, torch.Tensor] = {}

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch not in self._permutations:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            permutation = torch.randperm(self.count, generator=generator).to(self.device)
            self._permutations = {epoch: permutation, **{e: p for e, p in self._permutations.items() if e == epoch - 1}}
        return self._permutations[epoch]

    def __call__(self, step: int) -> torch.Tensor:
        """LongTensor ``[B]`` on the device."""
        first, last = step * self.batch_size, (step + 1) * self.batch_size - 1
        parts = [self._permutation(epoch)[max(first, epoch * self.count) - epoch * self.count:
                                          min(last, (epoch + 1) * self.count - 1) - epoch * self.count + 1]
                 for epoch in range(first // self.count, last // self.count + 1)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def step_seed(cfg: BodyTrainingConfig, step: int) -> int:
    return cfg.train.seed * 1_000_003 + step


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
             "colors": lr.colors, "jaw": lr.jaw}
    optimizers: dict[str, dict] = {}
    for name in LAYERS:
        params = model.gaussians[name]
        optimizers[name] = {key: torch.optim.Adam([params[key]], lr=rates[key], eps=1e-15) for key in GAUSSIAN_KEYS}
    planes = [model.deform.triplane.planes, model.mouth_deform.triplane.planes]
    bases = [net.appearance_basis for net in (model.deform, model.mouth_deform) if net.appearance_basis is not None]
    mlp = [p for p in model.deformation_parameters()
           if all(p is not other for other in [*planes, *bases, model.jaw_pivot])]
    groups = [{"params": planes, "lr": lr.deform_planes}, {"params": mlp, "lr": lr.deform_mlp},
              {"params": [model.jaw_pivot], "lr": lr.jaw_pivot}]
    if bases:  # a body without them (saved before, or appearance off) keeps the three groups it resumes with
        groups.append({"params": bases, "lr": lr.appearance_basis})
    optimizers["deform"] = {"all": torch.optim.Adam(groups)}
    for group_optimizers in optimizers.values():
        for optimizer in group_optimizers.values():
            for group in optimizer.param_groups:
                group["initial_lr"] = group["lr"]
    return optimizers


def build_strategy(cfg: BodyTrainingConfig):
    """gsplat's DefaultStrategy when densification is on, else None. It reads the per-layer ``info`` of either
    backend (gsplat's packed meta on CUDA, the reference rasteriser's unpacked one on CPU). Its own stop step
    is never reached: the loop ends refinement at ``densify.stop_fraction`` of the run's progress."""
    if not cfg.densify.enabled:
        return None
    from gsplat.strategy import DefaultStrategy

    densify = cfg.densify
    return DefaultStrategy(prune_opa=densify.prune_opacity, grow_grad2d=densify.grad_threshold,
                           refine_start_iter=densify.start_step, refine_stop_iter=10 ** 9,
                           refine_every=densify.every, reset_every=10 ** 9,  # no opacity reset: frames are dense
                           key_for_gradient="means2d")


# --- the schedule -------------------------------------------------------------------------------------
def schedule_progress(cfg: BodyTrainingConfig, step: int, elapsed_s: float) -> float:
    """How far the run is, 0..1: by steps, or (time schedule) by steps or wall time, whichever is further."""
    progress = step / max(1, cfg.train.max_steps)
    if cfg.train.time_schedule and cfg.train.max_minutes > 0:
        progress = max(progress, elapsed_s / (60 * cfg.train.max_minutes))
    return min(1.0, progress)


def phase_at(cfg: BodyTrainingConfig, progress: float) -> PhaseConfig:
    boundary = 0.0
    for phase in cfg.train.phases:
        boundary += phase.fraction
        if progress < boundary:
            return phase
    return cfg.train.phases[-1]


def set_learning_rates(optimizers: dict[str, dict], cfg: BodyTrainingConfig, progress: float) -> None:
    """Exponential decay of the position and deformation rates (3DGS-style); others stay constant."""
    decay = cfg.lr.final_factor ** progress
    decayed = [optimizers[name]["means"] for name in LAYERS] + [optimizers["deform"]["all"]]
    for optimizer in decayed:
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * decay


# --- one step -----------------------------------------------------------------------------------------
def mouth_losses(out: dict, batch: dict) -> dict[str, torch.Tensor]:
    """Inside the mouth mask: the composite's L1, the face layer's coverage, the mouth layer's missing
    coverage — each summed over the mask and averaged over all pixels like the whole-image terms, so a
    weight says how much more a mouth pixel counts than any pixel (and a tiny mouth cannot blow a term up)."""
    inside = batch["mouth"]  # [B,H,W,1]
    face_alpha, mouth_alpha = out["layers"][0]["alpha"], out["layers"][1]["alpha"]
    return {"mouth_l1": ((out["color"] - batch["image"]).abs() * inside).mean(),
            "face_alpha_in_mouth": (face_alpha * inside).mean(),
            "mouth_alpha": ((1 - mouth_alpha) * inside).mean()}


def compute_loss(cfg: BodyTrainingConfig, out: dict, batch: dict, scale: float) -> dict[str, torch.Tensor]:
    color = out["color"]  # [B,H,W,3]
    offsets = out["offsets"]
    parts = {"l1": (color - batch["image"]).abs().mean(),
             "dssim": 1 - ssim(color, batch["image"]).mean(),
             "alpha": (out["alpha"] - batch["mask"]).abs().mean(),
             "offset": offsets["means"].pow(2).mean() / scale ** 2 + offsets["scales"].pow(2).mean()}
    if "colour_share" in offsets:  # the target colour is free where the share is 0
        parts["appearance_offset"] = offsets["opacities"].pow(2).mean() + offsets["colour_share"].pow(2).mean()
    elif "opacities" in offsets:
        parts["appearance_offset"] = offsets["opacities"].pow(2).mean() + offsets["colors"].pow(2).mean()
    if batch["mouth"] is not None:
        parts.update(mouth_losses(out, batch))
    total = sum(getattr(cfg.loss, name) * value for name, value in parts.items())
    return {"loss": total, **parts}


def train_step(cfg: BodyTrainingConfig, model: BodyModel, batch: dict, optimizers: dict[str, dict], strategy,
               strategy_states: dict, step: int, progress: float, backend: str,
               scale: float) -> dict[str, torch.Tensor]:
    """Render the batch, take one optimiser step on the phase's groups, densify (gsplat); return the loss parts
    as detached scalar tensors (reading them syncs the device, so the loop does that only when it logs)."""
    phase = phase_at(cfg, progress)
    refine = strategy is not None and progress < cfg.densify.stop_fraction
    out = model(batch["flame"], batch["translation"], backend=backend)
    if refine:
        for name, layer_out in zip(LAYERS, out["layers"]):
            strategy.step_pre_backward(model.gaussians[name], optimizers[name], strategy_states[name], step,
                                       layer_out["info"])
    losses = compute_loss(cfg, out, batch, scale)
    losses["loss"].backward()
    for group in PARAMETER_GROUPS:
        for optimizer in optimizers[group].values():
            if group in phase.groups:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    if refine:
        limits = {"face": cfg.densify.max_gaussians, "mouth": cfg.densify.max_mouth_gaussians}
        for name, layer_out in zip(LAYERS, out["layers"]):
            if model.gaussians[name]["means"].shape[0] <= limits[name]:
                strategy.step_post_backward(model.gaussians[name], optimizers[name], strategy_states[name], step,
                                            layer_out["info"], packed=layer_out["info"]["packed"])
    return {key: value.detach() for key, value in losses.items()}


# --- validation and memory ----------------------------------------------------------------------------
def validation_ids(subject: Subject, count: int) -> list[int]:
    ids = subject.val_ids or subject.train_ids[-1:]
    picks = np.linspace(0, len(ids) - 1, min(count, len(ids))).round().astype(int)
    return [ids[i] for i in sorted(set(picks.tolist()))]


def mean_frame_baseline(train_frames: SubjectFrames, val_frames: SubjectFrames) -> dict[str, float]:
    """Val PSNR/SSIM of predicting every frame as the mean training frame: what a model must beat."""
    mean = train_frames.mean_image()[None]
    scores = {"psnr": [], "ssim": []}
    for batch in val_frames.batches(16):
        prediction = mean.expand_as(batch["image"])
        scores["psnr"] += psnr(prediction, batch["image"]).tolist()
        scores["ssim"] += ssim(prediction, batch["image"]).tolist()
    return {key: float(np.mean(values)) for key, values in scores.items()}


def _proc_kb(path: Path, field_name: str) -> int:
    """A ``<field>: N kB`` line of a /proc file (Linux), 0 when unavailable."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory_report(device: torch.device) -> dict[str, float]:
    """Peak RSS of the trainer, its current proportional set size (PSS: shared pages split between the
    processes mapping them) plus its children's, and peak GPU memory, in GB. The trainer starts no worker
    processes, so its RSS is the whole of it."""
    pid = os.getpid()
    children_file = Path(f"/proc/{pid}/task/{pid}/children")
    children = [int(child) for child in children_file.read_text().split()] if children_file.exists() else []
    pss_kb = sum(_proc_kb(Path(f"/proc/{process}/smaps_rollup"), "Pss") for process in [pid, *children])
    report = {"ram_peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2,
              "ram_pss_gb": pss_kb / 1024 ** 2}
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
    finish_s: float = 0.0  # how long the last validation + save took: kept free at the end of a budget
    saved_step: int = -1  # the step of the last checkpoint written

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
        scale = float(payload["train_state"]["scale"])
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
    run.elapsed_before = float(train_state["elapsed_s"])
    run.history = list(train_state["history"])
    return run


def save_body(cfg: BodyTrainingConfig, run: TrainingRun) -> None:
    payload = run.model.to_payload()
    payload.update({
        "config": config_to_dict(cfg), "step": run.step,
        "train_state": {"optimizers": {group: {key: opt.state_dict() for key, opt in opts.items()}
                                       for group, opts in run.optimizers.items()},
                        "strategy": {name: {key: value for key, value in state.items() if value is not None}
                                     for name, state in run.strategy_states.items()},
                        "elapsed_s": run.elapsed(), "scale": run.scale, "history": run.history},
    })
    save_checkpoint(payload, Path(cfg.model_dir) / CHECKPOINT_NAME, kind="body")
    run.saved_step = run.step


def validate(run: TrainingRun, val_frames: SubjectFrames, backend: str, device: torch.device,
             logger: ScalarLogger, model_dir: Path) -> None:
    """Score the validation frames (the numbers of ``scene.evaluate``), log them with the Gaussian count and
    memory, refresh the preview of the worst frames."""
    scores = evaluate_body(run.model, val_frames, backend=backend, keep_worst=4)
    metrics = scores.metrics()
    row = {"step": run.step, "wall_s": run.elapsed(), "val_psnr": metrics["psnr"], "val_ssim": metrics["ssim"],
           "val_psnr_worst_decile": metrics["psnr_worst_decile"],
           **({"val_mouth_psnr": metrics["mouth_psnr"]} if metrics.get("mouth_psnr") is not None else {}),
           "gaussians": sum(run.model.num_gaussians().values()), **memory_report(device)}
    run.history.append(row)
    logger.log(run.step, **{k: v for k, v in row.items() if k != "step"})
    with atomic_output(model_dir / "val_preview.png") as tmp:
        Image.fromarray(contact_sheet(scores)).save(tmp, format="PNG")


def check_config(cfg: BodyTrainingConfig, resume: bool) -> Path:
    """The model directory, after refusing a config that cannot run (before any work)."""
    if not cfg.subject or not cfg.model_dir:
        raise ConfigError("both the subject folder (-s) and the model directory (-m) are required")
    for phase in cfg.train.phases:
        unknown = sorted(set(phase.groups) - set(PARAMETER_GROUPS))
        if unknown:
            raise ConfigError(f"train.phases '{phase.name}': unknown group(s) {unknown}; known: {PARAMETER_GROUPS}")
    if cfg.train.time_schedule and cfg.train.max_minutes <= 0:
        raise ConfigError("train.time_schedule needs a train.max_minutes budget")
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


def out_of_time(cfg: BodyTrainingConfig, run: TrainingRun) -> bool:
    """Whether the budget (if any) leaves no room for another step and the final validation + save."""
    budget_s = 60 * cfg.train.max_minutes
    return budget_s > 0 and run.elapsed() + run.finish_s >= budget_s


def finish_checkpoint(cfg: BodyTrainingConfig, run: TrainingRun, val_frames: SubjectFrames, backend: str,
                      device: torch.device, logger: ScalarLogger, model_dir: Path, *, validate_now: bool) -> None:
    """Validate (when due) and save, timing both so a budgeted run keeps room for the last ones."""
    started = time.perf_counter()
    if validate_now:
        validate(run, val_frames, backend, device, logger, model_dir)
    save_body(cfg, run)
    run.finish_s = max(run.finish_s, time.perf_counter() - started)


# --- the loop -----------------------------------------------------------------------------------------
def train(cfg: BodyTrainingConfig, *, resume: bool = False, progress: bool = True) -> Path:
    """Train (or resume) the body described by ``cfg``; returns the model directory."""
    model_dir = check_config(cfg, resume)
    seed_everything(cfg.train.seed)
    device = training_device(cfg)
    subject = Subject(cfg.subject, cache_frames=cfg.train.cache_frames)
    subject.frame(subject.train_ids[0])  # fail now, not mid-run, when images do not match meta.json
    if subject.has_mouth_masks:
        subject.mouth_mask(subject.train_ids[0])
    run = start_run(cfg, subject, device, resume=resume)
    backend = resolve_backend(cfg.train.backend, device)  # the renderer decides what "auto" means
    mean_translation = run.model.mean_translation.cpu().numpy()
    train_frames = SubjectFrames(subject, subject.train_ids, device, mean_translation=mean_translation,
                                 preload_max_gb=cfg.train.preload_max_gb, threads=cfg.train.load_threads)
    val_frames = SubjectFrames(subject, validation_ids(subject, cfg.train.val_frames), device,
                               mean_translation=mean_translation, preload_max_gb=cfg.train.preload_max_gb,
                               threads=cfg.train.load_threads)
    order = EpochOrder(len(train_frames), cfg.train.batch_size, cfg.train.seed, device)

    model_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(model_dir / "config.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    # A run resumed after a crash logged steps past its checkpoint: the logger drops those rows first.
    logger = ScalarLogger(model_dir, resume_step=run.step if resume else None, tensorboard=False)
    baseline = mean_frame_baseline(train_frames, val_frames)
    if run.step == 0:
        logger.log(0, val_psnr_mean_frame=baseline["psnr"], val_ssim_mean_frame=baseline["ssim"])

    run.model.train()
    bar = tqdm(total=cfg.train.max_steps, initial=run.step, desc="body", disable=not progress, dynamic_ncols=True)
    while run.step < cfg.train.max_steps and not out_of_time(cfg, run):
        torch.manual_seed(step_seed(cfg, run.step))  # gsplat's split noise: a function of the step
        batch = train_frames.batch(order(run.step))
        now = schedule_progress(cfg, run.step, run.elapsed())
        set_learning_rates(run.optimizers, cfg, now)
        scalars = train_step(cfg, run.model, batch, run.optimizers, run.strategy, run.strategy_states, run.step,
                             now, backend, run.scale)
        run.step += 1
        bar.update(1)
        if run.step % cfg.train.log_every == 0:
            scalars = {key: float(value) for key, value in scalars.items()}
            if not np.isfinite(scalars["loss"]):
                raise FloatingPointError(f"step {run.step}: loss is {scalars['loss']}; lower the learning rates")
            logger.log(run.step, **scalars, progress=now, gaussians=sum(run.model.num_gaussians().values()))
            bar.set_postfix(loss=f"{scalars['loss']:.4f}", phase=phase_at(cfg, now).name)
        if run.step % cfg.train.val_every == 0 or run.step % cfg.train.save_every == 0:
            finish_checkpoint(cfg, run, val_frames, backend, device, logger, model_dir,
                              validate_now=run.step % cfg.train.val_every == 0)
    bar.close()

    validated_last = not run.history or run.history[-1]["step"] != run.step
    if validated_last:
        validate(run, val_frames, backend, device, logger, model_dir)
    if validated_last or run.saved_step != run.step:  # the checkpoint keeps the validation history too
        save_body(cfg, run)
    stopped_by = "max_steps" if run.step >= cfg.train.max_steps else "max_minutes"
    summary = {"steps": run.step, "stopped_by": stopped_by, "wall_s": run.elapsed(),
               "baseline_mean_frame": baseline, "final": run.history[-1], "history": run.history,
               "gaussians": run.model.num_gaussians(), "device": str(device), "backend": backend,
               "frames_preloaded": train_frames.preloaded}
    save_json(model_dir / "summary.json", summary)
    logger.close()
    train_frames.close()
    val_frames.close()
    if progress:
        print_summary(summary)
    return model_dir


def print_summary(summary: dict) -> None:
    print(f"\n{'step':>7} {'wall s':>8} {'val PSNR':>9} {'worst 10%':>9} {'mouth':>7} {'val SSIM':>9} "
          f"{'Gaussians':>10} {'GPU GB':>7} {'RSS GB':>7} {'PSS GB':>7}")
    for row in summary["history"]:
        print(f"{row['step']:>7} {row['wall_s']:>8.1f} {row['val_psnr']:>9.2f} {row['val_psnr_worst_decile']:>9.2f} "
              f"{row.get('val_mouth_psnr', float('nan')):>7.2f} {row['val_ssim']:>9.4f} {row['gaussians']:>10} "
              f"{row.get('gpu_peak_gb', float('nan')):>7.2f} {row['ram_peak_gb']:>7.2f} {row['ram_pss_gb']:>7.2f}")
    base = summary["baseline_mean_frame"]
    print(f"mean-training-frame baseline on the same val frames: PSNR {base['psnr']:.2f}, SSIM {base['ssim']:.4f}; "
          f"stopped by {summary['stopped_by']} after {summary['steps']} steps, {summary['wall_s'] / 60:.2f} min")
