"""Reading EMOCA outputs: per-frame codes -> speaker ``[T,50]`` / listener ``[T,56]`` (DESIGN.md §2).

    python -m data_utils.emoca_io <emoca folder or file> --out listener.npy [--kind listener|speaker]
        [--num_frames N] [--max_missing_fraction 0.1] [--max_gap_frames 15]

What EMOCA writes (``gdl_apps/EMOCA/demos/test_emoca_on_video.py --save_codes True``; the demo appends the
model name to ``--output_folder``)::

    <output>/<model>/processed_<date>/<video stem>/results/<model>/<frame>_<detection>/exp.npy   [50]
                                                                                     /pose.npy  [6] global 3 | jaw 3
                                                                                     /shape.npy, tex.npy, detail.npy
                                                                                     /cam.npy   [3] optional, see below
                                                                                     /crop.npy  [3] optional, see below

That is for a relative ``--output_folder``; with an absolute one the demo writes the frame folders straight
into ``<output>/<model>/``, so one output folder per video, ``<root>/<video stem>/<model>/<frame>_<detection>/``,
is the other layout found under a root (DIM's preprocessing reads ViCo's EMOCA codes that way).
``<frame>`` is ffmpeg's 1-based frame number (``%06d``) and ``<detection>`` the face's index in that frame
(``%03d``); a frame in which the detector found no face has no folder. Also read: variants that save
``globalpose.npy`` + ``jawpose.npy`` instead of ``pose.npy``, and *stacked* codes — a ``.npz`` file or a folder
holding ``exp.npy [T,50]``, ``pose.npy [T,6]`` and optionally ``present.npy [T]`` (bool, frames with a face),
``cam.npy [T,3]``, ``crop.npy [T,3]``.

Stock EMOCA does not save the camera. ``cam.npy`` is DECA's weak-perspective camera ``[scale, tx, ty]``
(``vals["cam"]``) and ``crop.npy`` the square face crop EMOCA ran on, ``[centre_x, centre_y, size]`` in the
pixels of the frames given to EMOCA; with both, ``data_utils.process`` converts the camera to a metric head
translation (:func:`weak_perspective_to_translation`).

Missing frames (no detection) are filled by interpolation — linear for expression and camera, spherical
for the axis-angle rotations — and reported. A sequence with more than ``max_missing_fraction`` of its
frames missing, or with a gap longer than ``max_gap_frames``, is refused, as are NaN/Inf codes and codes
of the wrong width. Every refusal is an :class:`EmocaError` naming the file or folder.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_utils.resample import fill_missing, missing_runs
from utils.arrays import check_array, load_npy
from utils.atomic import save_npy
from utils.cli import cli_main, cli_parser
from utils.errors import InputError
from utils.flame import EXP_DIM, GLOBAL_ROT, GLOBAL_ROT_DIM, JAW, JAW_DIM, join_flame

POSE_DIM = GLOBAL_ROT_DIM + JAW_DIM  # EMOCA posecode: global 3 | jaw 3
CAM_DIM = 3  # weak perspective: scale, tx, ty
CROP_DIM = 3  # face crop: centre x, centre y, side length (pixels)
# Axis-angle rotations inside a [T,6] posecode: interpolated on the rotation manifold.
POSE_ROTATIONS = (slice(0, GLOBAL_ROT_DIM), slice(GLOBAL_ROT_DIM, POSE_DIM))
LISTENER_ROTATIONS = (GLOBAL_ROT, JAW)  # the same rotations inside the [T,56] listener vector

FRAME_FOLDER = re.compile(r"^(\d+)(?:_(\d+))?$")  # "000001_000" (EMOCA) or "000001"


class EmocaError(InputError):
    """EMOCA output that is missing, malformed, or has too many frames without a face."""


@dataclass
class EmocaSequence:
    """Per-frame EMOCA codes of one video, with missing frames filled in."""

    source: Path
    exp: np.ndarray  # float32 [T,50]
    pose: np.ndarray  # float32 [T,6]   global 3 | jaw 3, axis-angle
    present: np.ndarray  # bool [T]: a face was detected (False: interpolated)
    cam: np.ndarray | None = None  # float32 [T,3] weak perspective, when saved
    crop: np.ndarray | None = None  # float32 [T,3] face crop centre x, y, size (pixels), when saved
    notes: list[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return len(self.exp)

    @property
    def listener(self) -> np.ndarray:
        """``[T,56]``: expression followed by posecode (the contract's FLAME vector)."""
        return join_flame(self.exp, self.pose[:, :GLOBAL_ROT_DIM], self.pose[:, GLOBAL_ROT_DIM:])

    @property
    def speaker(self) -> np.ndarray:
        """``[T,50]``: expression only."""
        return self.exp

    def report(self) -> dict:
        runs = missing_runs(self.present)
        return {"source": str(self.source), "frames": self.num_frames,
                "missing_frames": int((~self.present).sum()),
                "longest_gap": max((length for _, length in runs), default=0),
                "gaps": [[start, length] for start, length in runs][:20]}


def find_emoca_sequence(emoca_root: str | Path, video_stem: str) -> Path:
    """Locate the EMOCA output for the video named ``video_stem`` under ``emoca_root``.

    Looked for, in order: ``<root>/<stem>.npz``; ``<root>/<stem>/`` holding frame folders or stacked arrays;
    one folder holding codes in EMOCA's demo layouts: ``<root>/<stem>/<model>/`` (an absolute output folder per
    video) or ``<root>[/<model>][/processed_*]/<stem>/results/<model>/`` (a relative one, ``<root>`` being the
    ``--output_folder`` given to the demo or a folder below it).
    """
    root = Path(emoca_root)
    if not root.is_dir():
        raise EmocaError(f"{root}: EMOCA output folder does not exist")
    npz = root / f"{video_stem}.npz"
    if npz.is_file():
        return npz
    direct = root / video_stem
    if direct.is_dir() and _layout(direct) is not None:
        return direct
    patterns = (f"{video_stem}/*", f"{video_stem}/results/*", f"*/{video_stem}/results/*",
                f"*/*/{video_stem}/results/*")
    candidates = sorted({path for pattern in patterns for path in root.glob(pattern)
                         if path.is_dir() and _layout(path) is not None})
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        listing = ", ".join(str(c) for c in candidates)
        raise EmocaError(f"{root}: several EMOCA outputs for {video_stem!r} ({listing}); keep one or pass it directly")
    raise EmocaError(f"{root}: no EMOCA output for video {video_stem!r} (looked for {video_stem}.npz, "
                     f"{video_stem}/, {video_stem}/<model>/ and [<model>/][processed_*/]{video_stem}/results/<model>/)")


def _layout(folder: Path) -> str | None:
    """``"stacked"``, ``"frames"`` or None for a folder that holds no EMOCA codes."""
    if (folder / "exp.npy").is_file():
        return "stacked"
    if any(FRAME_FOLDER.match(p.name) and (p / "exp.npy").is_file() for p in folder.iterdir() if p.is_dir()):
        return "frames"
    return None


def read_emoca_sequence(path: str | Path, *, num_frames: int | None = None, max_missing_fraction: float = 0.1,
                        max_gap_frames: int | None = 15, face_index: int = 0,
                        first_frame_number: int = 1) -> EmocaSequence:
    """Read per-frame or stacked EMOCA codes from ``path`` and fill missing frames.

    ``num_frames`` is the video's frame count: frames after the last detection count as missing (without it
    the sequence ends at the last detected frame). ``face_index`` picks one detection per frame (EMOCA's
    ``_000`` is the first); ``first_frame_number`` is the number of the video's first frame folder (EMOCA
    numbers frames from 1).
    """
    path = Path(path)
    layout = _layout(path) if path.is_dir() else None
    if path.is_file() and path.suffix == ".npz":
        codes = _read_stacked_npz(path)
    elif layout == "stacked":
        codes = _read_stacked_folder(path)
    elif layout == "frames":
        codes = _read_frame_folders(path, face_index, first_frame_number)
    else:
        raise EmocaError(f"{path}: not an EMOCA output (expected frame folders with exp.npy/pose.npy, "
                         f"stacked exp.npy/pose.npy, or a .npz)")
    exp, pose, present, cam, crop = codes
    if num_frames is not None:
        if len(exp) > num_frames:
            raise EmocaError(f"{path}: EMOCA codes for {len(exp)} frames, but the video has only {num_frames}")
        pad = num_frames - len(exp)
        if pad:
            exp, pose = _pad(exp, pad), _pad(pose, pad)
            cam = _pad(cam, pad) if cam is not None else None
            crop = _pad(crop, pad) if crop is not None else None
            present = np.concatenate([present, np.zeros(pad, dtype=bool)])
    total = len(present)
    missing = int((~present).sum())
    if missing == total:
        raise EmocaError(f"{path}: no frame has a face detection ({total} frames)")
    if missing / total > max_missing_fraction:
        raise EmocaError(f"{path}: {missing} of {total} frames ({missing / total:.1%}) have no face, more than the "
                         f"allowed {max_missing_fraction:.1%} (max_missing_fraction)")
    runs = missing_runs(present)
    longest = max((length for _, length in runs), default=0)
    if max_gap_frames is not None and longest > max_gap_frames:
        start = next(s for s, length in runs if length == longest)
        raise EmocaError(f"{path}: a gap of {longest} frames without a face (frames {start}..{start + longest - 1}), "
                         f"longer than the allowed {max_gap_frames} (max_gap_frames)")
    notes = [f"interpolated {missing} frame(s) without a face in {len(runs)} gap(s), longest {longest}"] if missing else []
    return EmocaSequence(
        source=path,
        exp=fill_missing(exp, present),
        pose=fill_missing(pose, present, POSE_ROTATIONS),
        present=present,
        cam=fill_missing(cam, present) if cam is not None else None,
        crop=fill_missing(crop, present) if crop is not None else None,
        notes=notes,
    )


def load_emoca_codes(emoca_root: str | Path, video_stem: str, **kwargs) -> EmocaSequence:
    """:func:`find_emoca_sequence` then :func:`read_emoca_sequence`."""
    return read_emoca_sequence(find_emoca_sequence(emoca_root, video_stem), **kwargs)


def weak_perspective_to_translation(cam: np.ndarray, crop: np.ndarray, *, fx: float, fy: float, cx: float,
                                    cy: float) -> np.ndarray:
    """DECA weak-perspective camera + face crop -> head translation ``[T,3]`` in metres (OpenCV camera).

    EMOCA projects a FLAME point ``P`` (metres, y up) to normalised crop coordinates
    ``x = s (P_x + t_x)``, ``y = -s (P_y + t_y)`` (image y down, ``[-1,1]`` across the crop), i.e. to pixels
    ``u = c_x' + x size/2`` and ``v = c_y' + y size/2`` for a crop of side ``size`` centred at ``(c_x', c_y')``.
    A pinhole camera ``u = f_x X/Z + c_x`` matches that scale at depth ``Z = f_x / (s size / 2)``; the FLAME
    origin then sits at ``X = (c_x' - c_x) Z / f_x + t_x``, ``Y = (c_y' - c_y) Z / f_y - t_y (f_x / f_y)``.
    Assumptions: the head is small against its distance (weak perspective holds), FLAME is in metres, and
    ``crop`` and the intrinsics are in the same pixel coordinates. The depth is only as right as ``f_x``.
    """
    cam = np.asarray(cam, dtype=np.float64)
    crop = np.asarray(crop, dtype=np.float64)
    scale, tx, ty = cam[:, 0], cam[:, 1], cam[:, 2]
    crop_x, crop_y, size = crop[:, 0], crop[:, 1], crop[:, 2]
    if (scale <= 0).any() or (size <= 0).any():
        raise EmocaError("weak-perspective scale and crop size must be positive to convert to a translation")
    depth = fx / (scale * size / 2)
    x = (crop_x - cx) * depth / fx + tx
    y = (crop_y - cy) * depth / fy - ty * (fx / fy)
    return np.stack([x, y, depth], axis=1).astype(np.float32)


def _pad(array: np.ndarray, count: int) -> np.ndarray:
    return np.concatenate([array, np.zeros((count, array.shape[1]), dtype=array.dtype)])


def _load_vector(path: Path, width: int) -> np.ndarray:
    array = load_npy(path, error=EmocaError)
    if array.size != width:
        raise EmocaError(f"{path}: expected {width} values, got shape {list(array.shape)}")
    if not np.isfinite(array).all():
        raise EmocaError(f"{path}: NaN/Inf codes")
    return array.reshape(width).astype(np.float32)


def _check_codes(array: np.ndarray, width: int, source: str) -> np.ndarray:
    """Stacked ``[T,width]`` codes as float32; integers are accepted (a face crop in whole pixels)."""
    return check_array(array, width, source, error=EmocaError, integers=True)


def _read_frame_folders(folder: Path, face_index: int, first_frame_number: int):
    frames: dict[int, Path] = {}
    for entry in folder.iterdir():
        match = FRAME_FOLDER.match(entry.name)
        if not match or not entry.is_dir():
            continue
        detection = int(match.group(2)) if match.group(2) is not None else 0
        if detection != face_index:
            continue
        number = int(match.group(1))
        if number < first_frame_number:
            raise EmocaError(f"{entry}: frame number {number} is below first_frame_number={first_frame_number} "
                             f"(set it to 0 for 0-based frame folders)")
        frames[number - first_frame_number] = entry
    if not frames:
        raise EmocaError(f"{folder}: no frame folders for face index {face_index}")
    total = max(frames) + 1
    present = np.zeros(total, dtype=bool)
    exp = np.zeros((total, EXP_DIM), dtype=np.float32)
    pose = np.zeros((total, POSE_DIM), dtype=np.float32)
    first = frames[min(frames)]
    has_cam = (first / "cam.npy").is_file()
    has_crop = (first / "crop.npy").is_file()
    cam = np.zeros((total, CAM_DIM), dtype=np.float32) if has_cam else None
    crop = np.zeros((total, CROP_DIM), dtype=np.float32) if has_crop else None
    for index, frame_dir in sorted(frames.items()):
        present[index] = True
        exp[index] = _load_vector(frame_dir / "exp.npy", EXP_DIM)
        if (frame_dir / "pose.npy").is_file():
            pose[index] = _load_vector(frame_dir / "pose.npy", POSE_DIM)
        elif (frame_dir / "globalpose.npy").is_file() and (frame_dir / "jawpose.npy").is_file():
            pose[index] = np.concatenate([_load_vector(frame_dir / "globalpose.npy", GLOBAL_ROT_DIM),
                                          _load_vector(frame_dir / "jawpose.npy", JAW_DIM)])
        else:
            raise EmocaError(f"{frame_dir}: no pose.npy (nor globalpose.npy + jawpose.npy)")
        for name, target, width in (("cam.npy", cam, CAM_DIM), ("crop.npy", crop, CROP_DIM)):
            if target is not None:
                if not (frame_dir / name).is_file():
                    raise EmocaError(f"{frame_dir}: missing {name} (other frames have one)")
                target[index] = _load_vector(frame_dir / name, width)
    return exp, pose, present, cam, crop


def _read_stacked(arrays: dict[str, np.ndarray], source: Path):
    for name in ("exp", "pose"):
        if name not in arrays:
            raise EmocaError(f"{source}: missing stacked '{name}' array")
    exp = _check_codes(arrays["exp"], EXP_DIM, f"{source} (exp)")
    pose = _check_codes(arrays["pose"], POSE_DIM, f"{source} (pose)")
    optional = {name: _check_codes(arrays[name], width, f"{source} ({name})") if name in arrays else None
                for name, width in (("cam", CAM_DIM), ("crop", CROP_DIM))}
    present = np.asarray(arrays["present"], dtype=bool).reshape(-1) if "present" in arrays \
        else np.ones(len(exp), dtype=bool)
    lengths = {"exp": len(exp), "pose": len(pose), "present": len(present),
               **{k: len(v) for k, v in optional.items() if v is not None}}
    if len(set(lengths.values())) != 1:
        raise EmocaError(f"{source}: stacked arrays disagree in length: {lengths}")
    return exp, pose, present, optional["cam"], optional["crop"]


def _read_stacked_folder(folder: Path):
    arrays = {}
    for name in ("exp", "pose", "present", "cam", "crop"):
        path = folder / f"{name}.npy"
        if path.is_file():
            arrays[name] = load_npy(path, error=EmocaError)
    return _read_stacked(arrays, folder)


def _read_stacked_npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except Exception as exc:
        raise EmocaError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from exc
    return _read_stacked(arrays, path)


@cli_main("data_utils.emoca_io")
def main(argv: list[str] | None = None) -> int:
    parser = cli_parser("data_utils.emoca_io", __doc__)
    parser.add_argument("source", help="EMOCA results folder (frame folders or stacked arrays) or .npz")
    parser.add_argument("--out", required=True, help="output .npy")
    parser.add_argument("--kind", choices=("listener", "speaker"), default="listener",
                        help="listener: [T,56] exp|global|jaw; speaker: [T,50] exp")
    parser.add_argument("--num_frames", type=int, default=None, help="the video's frame count")
    parser.add_argument("--max_missing_fraction", type=float, default=0.1)
    parser.add_argument("--max_gap_frames", type=int, default=15)
    parser.add_argument("--face_index", type=int, default=0)
    parser.add_argument("--first_frame_number", type=int, default=1)
    args = parser.parse_args(argv)
    sequence = read_emoca_sequence(args.source, num_frames=args.num_frames,
                                   max_missing_fraction=args.max_missing_fraction,
                                   max_gap_frames=args.max_gap_frames, face_index=args.face_index,
                                   first_frame_number=args.first_frame_number)
    codes = sequence.listener if args.kind == "listener" else sequence.speaker
    save_npy(args.out, codes)
    for note in sequence.notes:
        print(f"note: {note}")
    print(f"wrote {args.out}: float32 {list(codes.shape)} (source frame rate, not resampled)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
