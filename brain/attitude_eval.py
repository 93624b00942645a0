"""How well the reaction controls work: what ``python -m brain.evaluate ... --attitudes`` adds.

* **Attitude classifier**: multinomial logistic regression (L2, class-balanced) on statistics of 4-s windows
  of listener motion — per dimension the mean, the std and the RMS 0.2-s displacement — fitted on the
  ground-truth windows of the *train* split. Its balanced accuracy on the ground-truth *test* windows is the
  rate a generated listener is held to.
* **Requested attitudes**: the brain samples every test clip once per attitude (the methods
  ``diffusion[attitude=<name>]``); the classifier's confusion matrix over their windows (rows: requested,
  columns: classified) and its mean diagonal, the accuracy, next to the ground truth's.
* **Realism per attitude**: every method's metrics (brain.metrics) on the test clips of each attitude, the
  conditioned brain asked for the clips' own attitude. Over all test clips that is the main table's
  ``diffusion`` row (brain.evaluate samples a labelled corpus with each clip's own attitude);
  ``diffusion[no_attitude]`` is the brain asked for none.
* **Intensity sweep**: for each attitude, its test clips sampled at each requested intensity; the motion
  energy (brain/conditions.py) of the samples over that of the clips' ground truth, FD exp against it, and
  the classifier's accuracy. ``--attitude_guidance_sweep`` measures the alternative knob, the attitude
  guidance scale, the same way.

Used by :mod:`brain.evaluate` through :class:`AttitudeEvaluation`: ``score`` every method's samples as they
are made, then ``finish`` writes the plots and returns the ``metrics.json`` section and the Markdown.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import torch
from scipy.optimize import minimize
from scipy.stats import spearmanr
from tqdm import tqdm

from brain.conditions import ENERGY_LAG_FRAMES, motion_energy
from brain.metrics import MetricContext, evaluate_method
from brain.oracle import ORACLE
from brain.policy import MAX_BATCH_WINDOWS
from utils.errors import UsageError
from utils.flame import EXP

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CLASSIFIER_WINDOW_FRAMES = 100  # 4 s: long enough to hold a few reactions
CLASSIFIER_TRAIN_STRIDE = 25  # overlapping train windows; test and generated windows do not overlap
CLASSIFIER_L2 = 1e-2
DEFAULT_INTENSITY_SWEEP = (0.5, 0.7, 1.0, 1.4, 2.0)
DEFAULT_GUIDANCE_SWEEP = (0.0, 1.0, 2.0, 3.0)
REALISM_COLUMNS = (("fd_exp", "FD exp ↓"), ("fd_pose", "FD pose ↓"), ("pfd_exp", "P-FD exp ↓"),
                   ("frdiv", "FRDiv ↑"), ("amp_ratio", "amp ratio →1"), ("jitter", "jitter ≈GT"))
ATTITUDE_METHOD = "diffusion[attitude={}]"
NO_ATTITUDE_METHOD = "diffusion[no_attitude]"


# ---------------------------------------------------------------- the classifier


def window_features(motion: np.ndarray, stride: int = CLASSIFIER_WINDOW_FRAMES) -> np.ndarray:
    """``motion [T,56]`` -> ``[n,168]``: per dim mean, std and RMS 0.2-s displacement of each window of
    ``CLASSIFIER_WINDOW_FRAMES`` (one window of the whole clip when it is shorter)."""
    motion = np.asarray(motion, dtype=np.float64)
    length = min(CLASSIFIER_WINDOW_FRAMES, len(motion))
    if length <= ENERGY_LAG_FRAMES:
        raise UsageError(f"the attitude classifier needs clips longer than {ENERGY_LAG_FRAMES} frames")
    windows = np.lib.stride_tricks.sliding_window_view(motion, length, axis=0)[::stride]  # [n,56,L]
    displacement = windows[..., ENERGY_LAG_FRAMES:] - windows[..., :-ENERGY_LAG_FRAMES]
    return np.concatenate([windows.mean(-1), windows.std(-1), np.sqrt((displacement ** 2).mean(-1))], axis=1)


@dataclass
class AttitudeClassifier:
    """Logistic regression over :func:`window_features`; ``predict(motion [T,56])`` -> ``[n]`` attitude indices."""

    attitudes: list[str]
    feature_mean: np.ndarray  # [F]
    feature_std: np.ndarray  # [F]
    weights: np.ndarray  # [F+1,A], the last row the bias
    train_windows: int

    @classmethod
    def fit(cls, clips, attitudes: list[str]) -> "AttitudeClassifier":
        features, labels = [], []
        for clip in clips:
            clip_features = window_features(clip.listener, CLASSIFIER_TRAIN_STRIDE)
            features.append(clip_features)
            labels.append(np.full(len(clip_features), attitudes.index(clip.attitude)))
        features, labels = np.concatenate(features), np.concatenate(labels)
        missing = sorted(set(range(len(attitudes))) - set(labels.tolist()))
        if missing:
            raise UsageError(f"the train split has no clip of attitude(s) {', '.join(attitudes[i] for i in missing)}; "
                             f"the attitude classifier needs every attitude")
        mean, std = features.mean(0), np.maximum(features.std(0), 1e-8)
        inputs = np.concatenate([(features - mean) / std, np.ones((len(features), 1))], axis=1)  # [N,F+1]
        targets = np.eye(len(attitudes))[labels]  # [N,A]
        balance = (len(labels) / (len(attitudes) * np.bincount(labels)))[labels]  # [N] class-balanced weights
        shape = (inputs.shape[1], len(attitudes))

        def loss_and_grad(flat):
            weights = flat.reshape(shape)
            logits = inputs @ weights
            logits -= logits.max(1, keepdims=True)
            log_prob = logits - np.log(np.exp(logits).sum(1, keepdims=True))
            penalty = weights[:-1]
            loss = -(balance * (targets * log_prob).sum(1)).mean() + 0.5 * CLASSIFIER_L2 * (penalty ** 2).sum()
            grad = inputs.T @ (balance[:, None] * (np.exp(log_prob) - targets)) / len(inputs)
            grad[:-1] += CLASSIFIER_L2 * penalty
            return loss, grad.ravel()

        result = minimize(loss_and_grad, np.zeros(np.prod(shape)), jac=True, method="L-BFGS-B",
                          options={"maxiter": 1000})
        return cls(list(attitudes), mean, std, result.x.reshape(shape), len(labels))

    def predict(self, motion: np.ndarray) -> np.ndarray:
        """Attitude index of each non-overlapping window of ``motion [T,56]``."""
        features = (window_features(motion) - self.feature_mean) / self.feature_std
        return np.argmax(features @ self.weights[:-1] + self.weights[-1], axis=1)


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """``[A,A]`` rows: true (or requested) attitude, columns: classified; each row sums to 1 (NaN if empty)."""
    counts = np.zeros((classes, classes))
    np.add.at(counts, (true, predicted), 1)
    with np.errstate(invalid="ignore"):
        return counts / counts.sum(1, keepdims=True)


def balanced_accuracy(confusion: np.ndarray) -> float:
    """Mean over attitudes of the diagonal, those without windows left out."""
    diagonal = np.diag(confusion)
    return float(np.nanmean(diagonal)) if np.isfinite(diagonal).any() else float("nan")


# ---------------------------------------------------------------- the evaluation


class AttitudeEvaluation:
    """See the module docstring. ``policy`` is the diffusion brain (a labelled checkpoint)."""

    def __init__(self, policy, test_clips, train_clips, *, samples_per_sweep: int, seed: int, sampling: dict,
                 intensity_sweep=(), guidance_sweep=(), chunk_frames: int = 8, max_batch: int = MAX_BATCH_WINDOWS):
        self.policy = policy
        self.max_batch = max_batch
        self.attitudes = policy.attitudes
        if not self.attitudes:
            raise UsageError("--attitudes needs a checkpoint trained on a labelled corpus (this one has no attitudes)")
        labels = {clip.attitude for clip in list(test_clips) + list(train_clips)}
        if None in labels:
            raise UsageError("--attitudes needs a labelled corpus (meta.json \"attitudes\", clips/<id>/labels.json)")
        unknown = sorted(labels - set(self.attitudes))
        if unknown:
            raise UsageError(f"the corpus labels attitude(s) {', '.join(unknown)} that the checkpoint does not know "
                             f"(it knows {', '.join(self.attitudes)})")
        if policy.cfg.model.intensity_frames == 0:
            intensity_sweep = ()  # a checkpoint without an intensity condition has nothing to sweep
        self.test_clips = list(test_clips)
        self.samples_per_sweep, self.seed, self.sampling = samples_per_sweep, seed, dict(sampling)
        self.sweeps = {name: [float(v) for v in values] for name, values in
                       (("intensity", intensity_sweep), ("guidance_attitude", guidance_sweep)) if values}
        self.labels = np.array([self.attitudes.index(clip.attitude) for clip in self.test_clips])  # [N]
        self.classifier = AttitudeClassifier.fit(train_clips, self.attitudes)
        self.clips_of = {name: [i for i, label in enumerate(self.labels) if label == index]
                         for index, name in enumerate(self.attitudes)}
        self.contexts = {name: MetricContext.from_clips([self.test_clips[i] for i in indices], seed=seed,
                                                        chunk_frames=chunk_frames)
                         for name, indices in self.clips_of.items() if indices}
        self.realism: dict[str, dict[str, dict]] = {name: {} for name in self.contexts}
        self.classified: dict[str, float] = {}  # method -> share of windows classified as the clips' attitude
        self.requested = np.full((len(self.attitudes), len(self.attitudes)), np.nan)

    def _predictions(self, samples) -> tuple[np.ndarray, np.ndarray]:
        """Classified attitude and the clip's label of every window of every sample: ``([n], [n])``."""
        predicted, truth = [], []
        for motion, label in zip(samples, self.labels):
            for sample in motion:
                windows = self.classifier.predict(sample)
                predicted.append(windows)
                truth.append(np.full(len(windows), label))
        return np.concatenate(predicted), np.concatenate(truth)

    def score(self, name: str, samples: list[np.ndarray]) -> None:
        """Take one method's samples (``[K,T,56]`` per test clip) into the attitude tables."""
        predicted, truth = self._predictions(samples)
        requested = next((a for a in self.attitudes if name == ATTITUDE_METHOD.format(a)), None)
        if requested is None:
            self.classified[name] = float((predicted == truth).mean())
            for attitude, indices in self.clips_of.items():
                if indices:
                    self.realism[attitude][name] = evaluate_method(self.contexts[attitude], [samples[i] for i in indices])
            return
        index = self.attitudes.index(requested)
        self.requested[index] = confusion_matrix(np.full(len(predicted), index), predicted, len(self.attitudes))[index]
        indices = self.clips_of[requested]
        if indices:
            self.realism[requested][name] = evaluate_method(self.contexts[requested], [samples[i] for i in indices])

    def finish(self, folder: Path) -> tuple[dict, str]:
        """Run the sweeps, write the plots into ``folder``; return the ``metrics.json`` section and Markdown."""
        truth_predicted, truth_labels = self._predictions([clip.listener[None] for clip in self.test_clips])
        truth_confusion = confusion_matrix(truth_labels, truth_predicted, len(self.attitudes))
        truth_accuracy = balanced_accuracy(truth_confusion)
        generated_accuracy = balanced_accuracy(self.requested)
        sweeps = {option: self._sweep(option, values) for option, values in self.sweeps.items()}
        fd_over_oracle = {attitude: rows[ATTITUDE_METHOD.format(attitude)]["fd_exp"] / rows[ORACLE]["fd_exp"]
                          for attitude, rows in self.realism.items()
                          if ORACLE in rows and ATTITUDE_METHOD.format(attitude) in rows}
        section = {
            "names": self.attitudes,
            "classifier": {"window_frames": CLASSIFIER_WINDOW_FRAMES, "train_windows": self.classifier.train_windows,
                           "ground_truth_test_windows": len(truth_predicted)},
            "ground_truth_accuracy": truth_accuracy,
            "ground_truth_confusion": truth_confusion.tolist(),
            "generated_accuracy": generated_accuracy,
            "generated_confusion": self.requested.tolist(),
            "accuracy_ratio": generated_accuracy / truth_accuracy if truth_accuracy > 0 else float("nan"),
            "classified_as_clip_attitude": self.classified,
            "realism": self.realism,
            "fd_exp_over_oracle": fd_over_oracle,  # per attitude: diffusion[attitude=a] / oracle on a's clips
            "sweeps": sweeps,
        }
        plot_confusions(folder / "attitude_confusion.png", self.attitudes,
                        {f"ground truth test windows ({truth_accuracy:.2f})": truth_confusion,
                         f"generated, requested attitude ({generated_accuracy:.2f})": self.requested})
        for option, result in sweeps.items():
            plot_sweep(folder / f"{option}_sweep.png", option, result)
        return section, format_attitude_tables(section)

    def _sweep(self, option: str, values: list[float]) -> dict:
        """Per attitude and value: samples of its test clips -> energy ratio to the truth, FD exp, accuracy."""
        result = {"values": values, "per_attitude": {}}
        for attitude, indices in tqdm(self.clips_of.items(), desc=f"{option} sweep", unit="attitude", leave=False):
            if not indices:
                continue
            context = self.contexts[attitude]
            truth_energy = np.mean([self._energy(self.test_clips[i].listener) for i in indices])
            rows = {"energy_ratio": [], "fd_exp": [], "accuracy": []}
            for value in values:
                energies, distances, hits = [], [], []
                clips = [self.test_clips[i] for i in indices]
                motions = self.policy.generate_many([(clip.speaker_audio, clip.speaker_exp) for clip in clips],
                                                    num_samples=self.samples_per_sweep,
                                                    seeds=[self.seed + i for i in indices],
                                                    attitudes=[attitude] * len(indices), max_batch=self.max_batch,
                                                    **{**self.sampling, option: value})
                for position, motion in enumerate(motions):
                    energies += [self._energy(sample) for sample in motion]
                    distances += [context.listener_stats[position]["exp"].frechet_to(sample[:, EXP]) for sample in motion]
                    hits += [np.mean(self.classifier.predict(sample) == self.attitudes.index(attitude))
                             for sample in motion]
                rows["energy_ratio"].append(float(np.mean(energies) / truth_energy))
                rows["fd_exp"].append(float(np.mean(distances)))
                rows["accuracy"].append(float(np.mean(hits)))
            ratios = rows["energy_ratio"]
            rows["monotonic"] = bool(all(b > a for a, b in zip(ratios, ratios[1:])))
            rows["spearman"] = float(spearmanr(values, ratios).statistic) if len(values) > 1 else float("nan")
            result["per_attitude"][attitude] = rows
        return result

    @torch.no_grad()
    def _energy(self, motion: np.ndarray) -> float:
        """Motion energy of one ``[T,56]`` sequence, z-scored with the brain's normaliser."""
        motion = torch.from_numpy(np.asarray(motion, dtype=np.float32)).to(self.policy.device)
        return float(motion_energy(self.policy.normalizer.normalize_listener(motion).cpu().numpy()))


# ---------------------------------------------------------------- tables and plots


def _cell(value) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


def format_attitude_tables(section: dict) -> str:
    """The Markdown that follows the main tables in metrics.md."""
    names = section["names"]
    lines = ["## Attitude control", "",
             f"Classifier: logistic regression on {section['classifier']['window_frames']}-frame windows, fitted on "
             f"{section['classifier']['train_windows']} ground-truth train windows.", "",
             f"* ground-truth test windows ({section['classifier']['ground_truth_test_windows']}): balanced accuracy "
             f"{_cell(section['ground_truth_accuracy'])}",
             f"* generated with each requested attitude: accuracy {_cell(section['generated_accuracy'])} = "
             f"{_cell(section['accuracy_ratio'])} × the ground truth's (issue #12's target: ≥ 0.9)"]
    if section["fd_exp_over_oracle"]:
        lines.append("* FD exp of the brain asked for each clip's attitude over the oracle's, on that attitude's clips "
                     "(target: ≤ 1.3): " + ", ".join(f"{a} {_cell(v)}" for a, v in section["fd_exp_over_oracle"].items()))
    lines.append("")
    for title, key in (("ground truth (rows: true attitude)", "ground_truth_confusion"),
                       ("generated (rows: requested attitude)", "generated_confusion")):
        lines += [f"Confusion, {title}; columns: classified", "", "| | " + " | ".join(names) + " |",
                  "|---|" + "---:|" * len(names)]
        lines += [f"| {name} | " + " | ".join(_cell(v) for v in row) + " |" for name, row in zip(names, section[key])]
        lines.append("")
    lines += ["Share of windows classified as the clip's own attitude, per method: "
              + ", ".join(f"{m} {_cell(v)}" for m, v in section["classified_as_clip_attitude"].items()), "",
              "## Realism per attitude (each attitude's test clips)", "",
              "| attitude | method | " + " | ".join(h for _, h in REALISM_COLUMNS) + " |",
              "|---|---|" + "---:|" * len(REALISM_COLUMNS)]
    for attitude, methods in section["realism"].items():
        for method, scores in methods.items():
            lines.append(f"| {attitude} | {method} | " + " | ".join(_cell(scores[k]) for k, _ in REALISM_COLUMNS) + " |")
    lines.append("")
    for option, result in section["sweeps"].items():
        values = result["values"]
        lines += [f"## {option} sweep: motion energy over the ground truth's, FD exp, accuracy", "",
                  f"| attitude | quantity | " + " | ".join(f"{v:g}" for v in values) + " | monotonic |",
                  "|---|---|" + "---:|" * (len(values) + 1)]
        for attitude, rows in result["per_attitude"].items():
            for quantity in ("energy_ratio", "fd_exp", "accuracy"):
                monotonic = str(rows["monotonic"]).lower() if quantity == "energy_ratio" else ""
                lines.append(f"| {attitude} | {quantity} | " + " | ".join(_cell(v) for v in rows[quantity])
                             + f" | {monotonic} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def plot_confusions(path: Path, names: list[str], matrices: dict[str, np.ndarray]) -> None:
    fig, axes = plt.subplots(1, len(matrices), figsize=(4.2 * len(matrices), 3.8), squeeze=False)
    for ax, (title, matrix) in zip(axes[0], matrices.items()):
        ax.imshow(np.nan_to_num(matrix), vmin=0, vmax=1, cmap="Blues")
        for (row, column), value in np.ndenumerate(matrix):
            ax.text(column, row, _cell(float(value)), ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(names)), names, fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xlabel("classified")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sweep(path: Path, option: str, result: dict) -> None:
    """Energy ratio (left) and FD exp (right) against the swept value, one line per attitude."""
    values = result["values"]
    fig, (energy_ax, fd_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for attitude, rows in result["per_attitude"].items():
        energy_ax.plot(values, rows["energy_ratio"], marker="o", label=attitude)
        fd_ax.plot(values, rows["fd_exp"], marker="o", label=attitude)
    energy_ax.axhline(1.0, color="k", lw=0.6, ls=":", label="ground truth")
    if option == "intensity":
        energy_ax.plot(values, values, color="grey", lw=0.8, ls="--", label="asked (y = x)")
        for ax in (energy_ax, fd_ax):
            ax.set_xscale("log", base=2)
    energy_ax.set_ylabel("motion energy / ground truth's")
    fd_ax.set_ylabel("FD exp ↓")
    for ax in (energy_ax, fd_ax):
        ax.set_xlabel(f"requested {option}")
        ax.legend(fontsize=7)
    fig.suptitle(f"{option} sweep on each attitude's test clips", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
