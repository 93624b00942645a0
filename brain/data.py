"""Reading the dyadic corpus (DESIGN.md §3.1) and refusing anything that breaks its contract.

    <root>/meta.json                     {"fps": 25, "audio_dim": 768, "speaker_dim": 50, "listener_dim": 56}
    <root>/splits/{train,val,test}.txt   one clip id per line
    <root>/clips/<clip_id>/speaker_audio.npy   float32 [T,768]
    <root>/clips/<clip_id>/speaker_exp.npy     float32 [T,50]
    <root>/clips/<clip_id>/listener.npy        float32 [T,56]
    <root>/clips/<clip_id>/speaker.wav         optional
    <root>/clips/<clip_id>/labels.json         optional {"attitude": "<name>"}

Attitude labels are all or nothing: a corpus whose ``meta.json`` lists ``"attitudes": [names]`` is
*labelled*, and then every clip must carry a ``labels.json`` whose ``"attitude"`` is one of those names (a
clip without one is refused: training would otherwise silently learn it as "no attitude"). A corpus whose
``meta.json`` lists none is unlabelled, and a clip there that names an attitude is refused too (a writer
that forgot the list). Other keys of ``labels.json`` are ignored, for labels a later reader may add.

Every refusal is a :class:`CorpusError` naming the clip, the file and the numbers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.arrays import check_array, load_npy
from utils.atomic import save_json
from utils.errors import InputError
from utils.flame import AUDIO_DIM, FLAME_DIM, FPS, SPEAKER_EXP_DIM

SPLITS = ("train", "val", "test")
CLIP_FILES = {"speaker_audio": AUDIO_DIM, "speaker_exp": SPEAKER_EXP_DIM, "listener": FLAME_DIM}


class CorpusError(InputError):
    """Corpus data that breaks the §3.1 contract."""


@dataclass
class Clip:
    clip_id: str
    speaker_audio: np.ndarray  # float32 [T,768]
    speaker_exp: np.ndarray  # float32 [T,50]
    listener: np.ndarray  # float32 [T,56]
    wav_path: Path | None = None  # speaker.wav when present
    attitude: str | None = None  # the listener's attitude (labels.json); None in an unlabelled corpus

    @property
    def num_frames(self) -> int:
        return len(self.listener)


def check_speaker_inputs(speaker_audio: np.ndarray, speaker_exp: np.ndarray, *, audio_source: str = "audio",
                         exp_source: str = "speaker_exp") -> tuple[np.ndarray, np.ndarray]:
    """Validate a speaker's ``[T,768]`` audio features and ``[T,50]`` expression: widths, finiteness, equal T."""
    speaker_audio = check_array(speaker_audio, AUDIO_DIM, audio_source, error=CorpusError)
    speaker_exp = check_array(speaker_exp, SPEAKER_EXP_DIM, exp_source, error=CorpusError)
    if len(speaker_audio) != len(speaker_exp):
        raise CorpusError(f"{audio_source} has {len(speaker_audio)} frames but {exp_source} has "
                          f"{len(speaker_exp)}: speaker audio and expression must have the same length")
    if len(speaker_audio) == 0:
        raise CorpusError(f"{audio_source}: no frames")
    return speaker_audio, speaker_exp


class DyadicCorpus:
    """A §3.1 corpus folder. Clips are read on demand; ``load_clip`` validates each one."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not meta_path.is_file():
            raise CorpusError(f"{self.root}: not a dyadic corpus (missing meta.json)")
        try:
            self.meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{meta_path}: invalid JSON ({exc})") from exc
        expected = {"fps": FPS, "audio_dim": AUDIO_DIM, "speaker_dim": SPEAKER_EXP_DIM, "listener_dim": FLAME_DIM}
        for key, value in expected.items():
            if self.meta.get(key) != value:
                raise CorpusError(f"{meta_path}: {key} is {self.meta.get(key)!r}, the contract requires {value}")
        self.attitudes = _attitude_names(self.meta.get("attitudes"), meta_path)  # [] when unlabelled

    def split_ids(self, split: str) -> list[str]:
        if split not in SPLITS:
            raise CorpusError(f"unknown split {split!r}; expected one of {SPLITS}")
        path = self.root / "splits" / f"{split}.txt"
        if not path.is_file():
            raise CorpusError(f"{self.root}: missing split file splits/{split}.txt")
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if not ids:
            raise CorpusError(f"{path}: the {split} split lists no clips")
        return ids

    def load_clip(self, clip_id: str, *, min_frames: int = 1) -> Clip:
        """Load and validate one clip; ``min_frames`` is the shortest clip the caller can use."""
        clip_dir = self.root / "clips" / clip_id
        if not clip_dir.is_dir():
            raise CorpusError(f"clip {clip_id}: missing folder {clip_dir}")
        arrays = {}
        for name, width in CLIP_FILES.items():
            path = clip_dir / f"{name}.npy"
            source = f"clip {clip_id}, {name}.npy"
            arrays[name] = check_array(load_npy(path, source, error=CorpusError), width, source, error=CorpusError)
        lengths = {name: len(a) for name, a in arrays.items()}
        if len(set(lengths.values())) != 1:
            detail = ", ".join(f"{name}.npy has {n}" for name, n in lengths.items())
            raise CorpusError(f"clip {clip_id}: length mismatch: {detail} frames")
        num_frames = lengths["listener"]
        if num_frames < min_frames:
            raise CorpusError(f"clip {clip_id}: {num_frames} frames, shorter than the {min_frames} the model needs")
        wav = clip_dir / "speaker.wav"
        return Clip(clip_id, arrays["speaker_audio"], arrays["speaker_exp"], arrays["listener"],
                    wav if wav.is_file() else None, self._read_attitude(clip_id, clip_dir / "labels.json"))

    def _read_attitude(self, clip_id: str, path: Path) -> str | None:
        """The clip's attitude from ``labels.json`` (see the module docstring for what is refused)."""
        source = f"clip {clip_id}, labels.json"
        if not path.is_file():
            if self.attitudes:
                raise CorpusError(f"{source}: missing file {path}; meta.json lists attitudes "
                                  f"({', '.join(self.attitudes)}), so every clip must be labelled")
            return None
        try:
            labels = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorpusError(f"{source}: invalid JSON in {path} ({exc})") from exc
        if not isinstance(labels, dict):
            raise CorpusError(f"{source}: expected a JSON object like {{\"attitude\": \"<name>\"}}, got {labels!r}")
        attitude = labels.get("attitude")
        if not self.attitudes:
            if attitude is not None:
                raise CorpusError(f"{source}: labels attitude {attitude!r}, but {self.root / 'meta.json'} lists "
                                  f"no \"attitudes\"")
            return None
        if attitude not in self.attitudes:
            raise CorpusError(f"{source}: attitude {attitude!r} is not one of meta.json's attitudes "
                              f"({', '.join(self.attitudes)})")
        return attitude

    def load_split(self, split: str, *, min_frames: int = 1) -> list[Clip]:
        return [self.load_clip(clip_id, min_frames=min_frames) for clip_id in self.split_ids(split)]


def _attitude_names(names, meta_path: Path) -> list[str]:
    """``meta.json``'s ``"attitudes"``: absent (``[]``, unlabelled) or a non-empty list of distinct names."""
    if names is None:
        return []
    if (not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names)
            or len(set(names)) != len(names)):
        raise CorpusError(f"{meta_path}: \"attitudes\" must be a non-empty list of distinct names, got {names!r}")
    return list(names)


def write_corpus_meta(root: str | Path, attitudes: list[str] | None = None) -> None:
    """Write the contract's ``meta.json`` (used by the corpus writers in ``data_utils``); ``attitudes``: the
    names a clip's ``labels.json`` may use, written as ``meta["attitudes"]`` — a labelled corpus, whose every
    clip then needs a ``labels.json`` (module docstring)."""
    meta = {"fps": FPS, "audio_dim": AUDIO_DIM, "speaker_dim": SPEAKER_EXP_DIM, "listener_dim": FLAME_DIM}
    if attitudes is not None:
        # A sequence of names; a bare string is refused, not split into letters.
        names = list(attitudes) if isinstance(attitudes, (list, tuple)) else attitudes
        meta["attitudes"] = _attitude_names(names, Path(root) / "meta.json")
    save_json(Path(root) / "meta.json", meta)
