"""Reading one subject folder (DESIGN.md §3.2) lazily, and refusing anything that breaks its contract.

    <subject>/meta.json          {"fps": 25, "width": W, "height": H, "fx":..,"fy":..,"cx":..,"cy":..}
    <subject>/frames/000000.png  RGB frames, N of them
    <subject>/masks/000000.png   uint8 head+neck mask (0/255), same size
    <subject>/flame.npy          float32 [N,56]
    <subject>/translation.npy    float32 [N,3]   optional
    <subject>/background.png     optional static plate; black if absent
    <subject>/splits.json        optional {"train": [ids], "val": [ids]}; default: last 1/11 is val

    subject = Subject("data/synthetic")
    frame = subject.frame(0)        # uint8 [H,W,3], read on first use, then kept in a bounded cache
    mask = subject.mask(0)          # uint8 [H,W]
    subject.flame                   # float32 [N,56]
    subject.train_ids, subject.val_ids

Images are decoded only when asked for and kept as uint8 in an LRU cache of ``cache_frames`` entries, so a
5k-frame subject at 512×512 stays far below the 4 GB RAM target (the whole video as uint8 would be ~3.9 GB).
Every refusal is a :class:`SubjectError` naming the file and the problem.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image

from utils.arrays import check_array, load_npy
from utils.errors import InputError
from utils.flame import FLAME_DIM, FPS

META_KEYS = ("fps", "width", "height", "fx", "fy", "cx", "cy")
VAL_FRACTION = 1 / 11  # default split: the last 1/11 of the frames is validation


class SubjectError(InputError):
    """Subject data that breaks the §3.2 contract."""


def frame_name(index: int) -> str:
    return f"{index:06d}.png"


def default_split(num_frames: int, val_fraction: float = VAL_FRACTION) -> tuple[list[int], list[int]]:
    """Frame indices ``(train, val)`` of a subject without ``splits.json``: the last ``val_fraction`` is
    validation (at least one frame when there are two or more), so validation never sits between training
    frames it could be interpolated from."""
    num_val = max(1, int(round(num_frames * val_fraction))) if num_frames > 1 else 0
    cut = num_frames - num_val
    return list(range(cut)), list(range(cut, num_frames))


class Subject:
    """A §3.2 subject folder: metadata and per-frame arrays eagerly, images lazily."""

    def __init__(self, root: str | Path, *, cache_frames: int = 512):
        self.root = Path(root)
        if not self.root.is_dir():
            raise SubjectError(f"{self.root}: subject folder does not exist")
        self.meta = self._read_meta()
        self.width, self.height = int(self.meta["width"]), int(self.meta["height"])
        self.fps = int(self.meta["fps"])
        self.flame = self._read_array("flame.npy", FLAME_DIM)  # [N,56]
        self.num_frames = len(self.flame)
        if self.num_frames == 0:
            raise SubjectError(f"{self.root / 'flame.npy'}: no frames")
        self.translation = (self._read_array("translation.npy", 3)  # [N,3] or None
                            if (self.root / "translation.npy").is_file() else None)
        self._check_frame_files()
        self.train_ids, self.val_ids = self._read_splits()
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._cache_size = max(0, int(cache_frames))

    @property
    def intrinsics(self) -> dict[str, float]:
        return {key: float(self.meta[key]) for key in ("fx", "fy", "cx", "cy")}

    # --- images -------------------------------------------------------------------------------------
    def frame(self, index: int) -> np.ndarray:
        """uint8 ``[H,W,3]`` RGB frame ``index``."""
        return self._cached("frames", index)

    def mask(self, index: int) -> np.ndarray:
        """uint8 ``[H,W]`` head+neck mask of frame ``index`` (0/255)."""
        return self._cached("masks", index)

    def background(self) -> np.ndarray:
        """uint8 ``[H,W,3]`` static plate; black when the subject has no ``background.png``."""
        path = self.root / "background.png"
        if not path.is_file():
            return np.zeros((self.height, self.width, 3), np.uint8)
        return self._read_image(path, "RGB")

    def _cached(self, folder: str, index: int) -> np.ndarray:
        if not 0 <= index < self.num_frames:
            raise IndexError(f"{self.root}: frame {index} out of range (the subject has {self.num_frames})")
        key = (folder, index)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        image = self._read_image(self.root / folder / frame_name(index), "RGB" if folder == "frames" else "L")
        if self._cache_size:
            self._cache[key] = image
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return image

    def _read_image(self, path: Path, mode: str) -> np.ndarray:
        if not path.is_file():
            raise SubjectError(f"{path}: missing file")
        try:
            with Image.open(path) as image:
                image = image.convert(mode)
                array = np.asarray(image, dtype=np.uint8)
        except Exception as exc:  # PIL raises several types for truncated or foreign files
            raise SubjectError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") from exc
        if array.shape[:2] != (self.height, self.width):
            raise SubjectError(f"{path}: image is {array.shape[1]}x{array.shape[0]} but meta.json says "
                               f"{self.width}x{self.height}")
        return array

    # --- metadata and arrays ------------------------------------------------------------------------
    def _read_meta(self) -> dict:
        path = self.root / "meta.json"
        if not path.is_file():
            raise SubjectError(f"{self.root}: not a subject folder (missing meta.json)")
        try:
            meta = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise SubjectError(f"{path}: invalid JSON ({exc})") from exc
        missing = [key for key in META_KEYS if key not in meta]
        if missing:
            raise SubjectError(f"{path}: missing key(s) {', '.join(missing)}")
        for key in META_KEYS:
            if not isinstance(meta[key], (int, float)) or isinstance(meta[key], bool) or meta[key] <= 0:
                raise SubjectError(f"{path}: {key} must be a positive number, got {meta[key]!r}")
        if meta["fps"] != FPS:
            raise SubjectError(f"{path}: fps is {meta['fps']}, the project works at {FPS} fps "
                               f"(resample the video when preparing the subject)")
        return meta

    def _read_array(self, name: str, width: int) -> np.ndarray:
        path = self.root / name
        return check_array(load_npy(path, error=SubjectError), width, str(path), error=SubjectError)

    def _check_frame_files(self) -> None:
        for folder in ("frames", "masks"):
            directory = self.root / folder
            if not directory.is_dir():
                raise SubjectError(f"{directory}: missing folder")
            names = sorted(p.name for p in directory.glob("*.png"))
            expected = [frame_name(i) for i in range(self.num_frames)]
            if names != expected:
                missing = sorted(set(expected) - set(names))
                if missing:
                    raise SubjectError(f"{directory / missing[0]}: missing file ({len(missing)} of the "
                                       f"{self.num_frames} frames in flame.npy are missing from {folder}/)")
                raise SubjectError(f"{directory}: holds {len(names)} images but flame.npy has "
                                   f"{self.num_frames} frames")
        if self.translation is not None and len(self.translation) != self.num_frames:
            raise SubjectError(f"{self.root / 'translation.npy'}: {len(self.translation)} rows but flame.npy "
                               f"has {self.num_frames} frames")

    def _read_splits(self) -> tuple[list[int], list[int]]:
        path = self.root / "splits.json"
        if not path.is_file():
            return default_split(self.num_frames)
        try:
            splits = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise SubjectError(f"{path}: invalid JSON ({exc})") from exc
        result = []
        for split in ("train", "val"):
            ids = splits.get(split) if isinstance(splits, dict) else None
            if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
                raise SubjectError(f"{path}: '{split}' must be a list of frame indices")
            bad = [i for i in ids if not 0 <= i < self.num_frames]
            if bad:
                raise SubjectError(f"{path}: {split} frame {bad[0]} out of range (the subject has "
                                   f"{self.num_frames} frames)")
            result.append(ids)
        if not result[0]:
            raise SubjectError(f"{path}: the train split is empty")
        return result[0], result[1]
