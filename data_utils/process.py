"""A subject video -> the subject folder of DESIGN.md §3.2 (the body's training data).

    python data_utils/process.py data/<ID>/<ID>.mp4 --emoca <emoca_out> --masks <folder or mask video>
    python -m data_utils.process data/<ID>/<ID>.mp4 --emoca <emoca_out>   # no --masks: mediapipe computes them
    options: [--out data/<ID>] [--size 512] [--crop centre|x,y,w,h] [--focal PX | --fov_degrees 60] \
        [--emoca_input source|frames] [--overwrite]

Writes, into ``--out`` (default: the video's folder):
* ``frames/000000.png ...`` — the video decoded at 25 fps (ffmpeg's ``fps`` filter: nearest source frame),
  cropped (``--crop``: a centred square by default, or ``x,y,w,h`` in source pixels; it must be square)
  and resized to ``--size`` with area averaging.
* ``masks/000000.png ...`` — head+neck masks, 0/255: the user's own (a folder with one image per output
  frame, at the output or the source size, or a mask video decoded like the frames) or, without
  ``--masks`` (``--mask_method mediapipe``, optional extra ``masks``), mediapipe's selfie segmentation kept above a neck
  line below the face-mesh chin.
* ``mouth_masks/000000.png ...`` — with mediapipe only (it has the face mesh): 0/255, the inside of the mesh's
  inner lip contour (teeth, tongue, mouth interior); empty where no face is found.
* ``flame.npy [N,56]`` — EMOCA codes (``data_utils.emoca_io``) with frames without a face interpolated,
  resampled to 25 fps when EMOCA ran on the source video at another rate.
* ``translation.npy [N,3]`` — when EMOCA saved ``cam.npy`` and ``crop.npy``: the weak-perspective camera
  converted to metres with the intrinsics below (``emoca_io.weak_perspective_to_translation``).
* ``background.png`` — per-pixel median over up to ``background_frames`` frames of the pixels outside the
  (dilated) mask; pixels never seen are filled from the nearest seen pixel.
* ``meta.json`` — 25 fps, size, intrinsics: ``--focal`` in source pixels when known, otherwise a pinhole
  with a ``--fov_degrees`` field of view across the source's longer side, principal point at the centre;
  then mapped through the crop and resize.
* ``splits.json`` — the last ``val_fraction`` of the frames is validation; ``process.json`` — provenance.

Each stage writes under a temporary name and is skipped when its output exists, so an interrupted run
resumes; re-running with different settings is refused unless ``--overwrite``. Bad input (unreadable
video, wrong mask count, EMOCA codes that disagree with the video's length, NaN codes, too many frames
without a face) stops with an error naming the file, and the command exits non-zero.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python data_utils/process.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dataclasses  # noqa: E402
import math  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from tqdm import tqdm  # noqa: E402

from data_utils.emoca_io import (LISTENER_ROTATIONS, EmocaError, load_emoca_codes,  # noqa: E402
                                 weak_perspective_to_translation)
from data_utils.media import CropBox, iter_video_frames  # noqa: E402
from data_utils.resample import resample_codes, resampled_length  # noqa: E402
from scene.subject import MOUTH_MASKS, VAL_FRACTION, default_split  # noqa: E402
from utils.atomic import atomic_output, save_json, save_npy  # noqa: E402
from utils.cli import cli_main, cli_parser  # noqa: E402
from utils.config import add_config_flags, changed_settings, config_from_flags  # noqa: E402
from utils.errors import InputError  # noqa: E402
from utils.flame import FPS  # noqa: E402
from utils.media import MediaError, probe_video  # noqa: E402

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MEDIAPIPE_CHIN, MEDIAPIPE_FOREHEAD = 152, 10  # face-mesh landmark indices
# The inner lip contour of mediapipe's face mesh, in order around the opening (its FACEMESH_LIPS inner loop).
MEDIAPIPE_INNER_LIPS = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
NECK_BELOW_CHIN = 0.5  # mediapipe masks keep the body down to chin + this x face height


class ProcessError(InputError):
    """Input that cannot become a subject folder; the message names the file."""


@dataclass
class ProcessOptions:
    size: int = 512  # output frames are size x size
    crop: str = "centre"  # "centre" (largest centred square) or "x,y,w,h" in source pixels
    focal: float = 0.0  # focal length in source pixels; 0: unknown, use fov_degrees
    fov_degrees: float = 60.0  # assumed field of view across the source's longer side when focal is unknown
    mask_threshold: int = 128  # user masks: >= threshold is foreground
    emoca_input: str = "source"  # EMOCA ran on: "source" (the original video) or "frames" (frames/*.png)
    max_missing_fraction: float = 0.1
    max_gap_seconds: float = 0.5
    length_tolerance_seconds: float = 0.2  # EMOCA codes vs decoded frames
    face_index: int = 0
    first_frame_number: int = 1
    background_frames: int = 200
    background_dilate: int = 4  # pixels of mask growth before a pixel counts as background
    val_fraction: float = VAL_FRACTION  # the last share of the frames is validation


@dataclass
class Intrinsics:
    fx: float
    fy: float
    cx: float
    cy: float


def source_intrinsics(width: int, height: int, focal: float, fov_degrees: float) -> tuple[Intrinsics, str]:
    """Pinhole intrinsics of the source video: the given focal, or the field-of-view default."""
    if focal > 0:
        return Intrinsics(focal, focal, width / 2, height / 2), f"given focal {focal:g} px"
    default = max(width, height) / 2 / math.tan(math.radians(fov_degrees) / 2)
    return Intrinsics(default, default, width / 2, height / 2), f"default: {fov_degrees:g} deg across the longer side"


def crop_intrinsics(source: Intrinsics, crop: CropBox, size: int) -> Intrinsics:
    """Intrinsics after cutting ``crop`` out of the frame and resizing it to ``size`` pixels."""
    scale = size / crop.w
    return Intrinsics(source.fx * scale, source.fy * scale, (source.cx - crop.x) * scale, (source.cy - crop.y) * scale)


# --- stages ---------------------------------------------------------------------------------------------
def write_frames(video: Path, out_dir: Path, crop: CropBox, size: int, max_frames: int) -> int:
    """Decode, crop and resize at 25 fps into ``out_dir/NNNNNN.png``; stops after ``max_frames``."""
    count = 0
    with atomic_output(out_dir, directory=True) as tmp:
        frames = iter_video_frames(video, fps=FPS, crop=crop, size=(size, size))
        for frame in tqdm(frames, desc="frames", unit="frame", total=max_frames):
            Image.fromarray(frame).save(tmp / f"{count:06d}.png", compress_level=1)
            count += 1
            if count == max_frames:
                frames.close()
                break
    return count


def write_masks(mask_source: Path | None, masker, frames_dir: Path, out_dir: Path, *, source_size,
                crop: CropBox, size: int, num_frames: int, threshold: int) -> None:
    """One 0/255 mask per frame from a folder, a mask video, or ``masker`` (frame -> head mask and mouth mask,
    e.g. mediapipe), which also fills ``mouth_masks/`` beside ``out_dir`` (DESIGN.md §3.2)."""
    if masker is not None:
        write_masker_masks(masker, frames_dir, out_dir, out_dir.parent / MOUTH_MASKS, num_frames)
        return
    with atomic_output(out_dir, directory=True) as tmp:
        if mask_source is not None and mask_source.is_dir():
            files = sorted(p for p in mask_source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if len(files) != num_frames:
                raise ProcessError(f"{mask_source}: {len(files)} mask images, but the video gives {num_frames} frames "
                                   f"at {FPS} fps (make one mask per output frame, or pass a mask video)")
            for index, path in enumerate(tqdm(files, desc="masks", unit="frame")):
                mask = _read_mask(path, source_size, crop, size)
                _save_mask(tmp / f"{index:06d}.png", np.where(mask >= threshold, 255, 0).astype(np.uint8))
        elif mask_source is not None:
            count = 0
            try:
                frames = iter_video_frames(mask_source, fps=FPS, crop=crop, size=(size, size), gray=True)
                for mask in tqdm(frames, desc="masks (video)", unit="frame", total=num_frames):
                    if count == num_frames:
                        frames.close()
                        break
                    _save_mask(tmp / f"{count:06d}.png", np.where(mask >= threshold, 255, 0).astype(np.uint8))
                    count += 1
            except MediaError as exc:
                raise ProcessError(str(exc)) from exc
            if count != num_frames:
                raise ProcessError(f"{mask_source}: the mask video gives {count} frames at {FPS} fps, "
                                   f"the subject video {num_frames}")
        else:
            raise ProcessError("no masks: pass --masks <folder or video> or --mask_method mediapipe")


def write_masker_masks(masker, frames_dir: Path, masks_dir: Path, mouth_dir: Path, num_frames: int) -> None:
    """Head and mouth masks from ``masker`` (``frame -> (head, mouth)``, both uint8 0/255) for every frame."""
    with atomic_output(masks_dir, directory=True) as heads, atomic_output(mouth_dir, directory=True) as mouths:
        for index in tqdm(range(num_frames), desc="masks (mediapipe)", unit="frame"):
            frame = np.asarray(Image.open(frames_dir / f"{index:06d}.png").convert("RGB"))
            head, mouth = masker(frame)
            _save_mask(heads / f"{index:06d}.png", head)
            _save_mask(mouths / f"{index:06d}.png", mouth)


def mouth_mask_from_lips(inner_lips: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 0/255 ``[H,W]``: the pixels whose centres lie inside the inner lip contour ``[K,2]`` (x, y in
    pixels). Closed lips make a degenerate polygon, so nothing is inside."""
    from matplotlib.path import Path as Polygon

    lips = np.asarray(inner_lips, np.float64)
    mask = np.zeros((height, width), np.uint8)
    # Only the contour's bounding box can hold inside pixels (the lips cover ~1% of a frame); points are (x, y).
    left, top = np.maximum(np.floor(lips.min(0)).astype(int), 0)
    right, bottom = np.minimum(np.ceil(lips.max(0)).astype(int) + 1, (width, height))
    if top >= bottom or left >= right:
        return mask
    rows, cols = np.mgrid[top:bottom, left:right]
    centres = np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=1)
    inside = Polygon(lips).contains_points(centres).reshape(bottom - top, right - left)
    mask[top:bottom, left:right] = np.where(inside, 255, 0)
    return mask


def _read_mask(path: Path, source_size: tuple[int, int], crop: CropBox, size: int) -> np.ndarray:
    try:
        with Image.open(path) as image:
            mask = image.convert("L")
    except Exception as exc:  # PIL raises several types for truncated or foreign files
        raise ProcessError(f"{path}: unreadable mask image ({type(exc).__name__}: {exc})") from exc
    if mask.size == (size, size):
        return np.asarray(mask)
    if mask.size == tuple(source_size):
        mask = mask.crop((crop.x, crop.y, crop.x + crop.w, crop.y + crop.h)).resize((size, size), Image.BILINEAR)
        return np.asarray(mask)
    raise ProcessError(f"{path}: mask is {mask.size[0]}x{mask.size[1]}; expected the output size {size}x{size} "
                       f"or the source size {source_size[0]}x{source_size[1]}")


def _save_mask(path: Path, mask: np.ndarray) -> None:
    Image.fromarray(mask.astype(np.uint8), mode="L").save(path, compress_level=1)


def mediapipe_head_masker():
    """``frame uint8 [H,W,3] -> (head mask, mouth mask)``, both uint8 ``[H,W]`` 0/255, with mediapipe (imported
    only when asked for). The mouth mask is the inside of the face mesh's inner lip contour (empty in frames
    where no face is found)."""
    try:
        import mediapipe as mp
    except ImportError as exc:
        raise ProcessError("--mask_method mediapipe needs the optional 'masks' extra (pip install "
                           "'diff-listener[masks]': mediapipe 0.10.21 ships its models and runs offline, but forces "
                           "numpy<2, so use a separate environment for preprocessing), or pass --masks") from exc
    selfie = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1)
    previous_limit: list[float] = []

    def masker(frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        person = selfie.process(frame).segmentation_mask > 0.5  # [H,W] bool: person incl. torso
        faces = mesh.process(frame).multi_face_landmarks
        mouth = np.zeros((height, width), np.uint8)
        if faces:
            landmarks = faces[0].landmark
            chin, forehead = landmarks[MEDIAPIPE_CHIN].y * height, landmarks[MEDIAPIPE_FOREHEAD].y * height
            previous_limit[:] = [chin + NECK_BELOW_CHIN * (chin - forehead)]
            lips = [(landmarks[i].x * width, landmarks[i].y * height) for i in MEDIAPIPE_INNER_LIPS]
            mouth = mouth_mask_from_lips(np.array(lips), height, width)
        limit = previous_limit[0] if previous_limit else height  # no face yet: keep the whole person
        rows = np.arange(height)[:, None] < limit
        head = np.where(person & rows, 255, 0).astype(np.uint8)
        return head, mouth & head

    return masker


def masked_median(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Median over axis 0 of ``values`` ``[K,H,W,C]`` where ``valid`` ``[K,H,W]``; 0 where nothing is valid.

    Sorting with the invalid entries pushed to the end and indexing by each pixel's valid count is ~8x
    faster than ``np.nanmedian`` on frame stacks (200 frames of a 64x512 row block: 1.3 s vs 11 s, CPU).
    """
    values = values.astype(np.float32)
    values[~valid] = np.inf  # sorted last
    ordered = np.sort(values, axis=0)
    count = np.broadcast_to(valid.sum(axis=0)[..., None], values.shape[1:])  # [H,W,C]
    lower = np.clip((count - 1) // 2, 0, len(values) - 1)[None]
    upper = np.clip(count // 2, 0, len(values) - 1)[None]
    median = 0.5 * (np.take_along_axis(ordered, lower, 0)[0] + np.take_along_axis(ordered, upper, 0)[0])
    return np.where(count > 0, median, 0.0).astype(np.float32)


def write_background(frames_dir: Path, masks_dir: Path, path: Path, num_frames: int, max_frames: int,
                     dilate: int) -> None:
    """Per-pixel median of the pixels outside the dilated masks over evenly spaced frames."""
    from scipy import ndimage

    picks = np.unique(np.linspace(0, num_frames - 1, min(max_frames, num_frames)).round().astype(int))
    frames = np.stack([np.asarray(Image.open(frames_dir / f"{i:06d}.png").convert("RGB")) for i in picks])
    structure = np.ones((2 * dilate + 1, 2 * dilate + 1), dtype=bool) if dilate > 0 else None

    def shows_background(index: int) -> np.ndarray:  # [H,W] True outside the (dilated) mask
        foreground = np.asarray(Image.open(masks_dir / f"{index:06d}.png")) > 127
        return ~(ndimage.binary_dilation(foreground, structure) if structure is not None else foreground)

    background_mask = np.stack([shows_background(i) for i in picks])  # [K,H,W]
    height = frames.shape[1]
    plate = np.zeros(frames.shape[1:], dtype=np.float32)
    seen = background_mask.any(axis=0)
    for top in range(0, height, 64):  # row blocks keep the float copy small
        plate[top:top + 64] = masked_median(frames[:, top:top + 64], background_mask[:, top:top + 64])
    if seen.any() and not seen.all():
        _, (rows, cols) = ndimage.distance_transform_edt(~seen, return_indices=True)
        plate = plate[rows, cols]
    with atomic_output(path) as tmp:
        Image.fromarray(plate.round().clip(0, 255).astype(np.uint8)).save(tmp)


# --- the whole subject -----------------------------------------------------------------------------------
def process_subject(video: str | Path, emoca_root: str | Path, out: str | Path | None = None,
                    options: ProcessOptions | None = None, *, masks: str | Path | None = None,
                    mask_method: str | None = None, overwrite: bool = False) -> dict:
    """Build the §3.2 folder for ``video``; returns the provenance written to ``process.json``."""
    options = options or ProcessOptions()
    video = Path(video)
    out = Path(out) if out is not None else video.parent
    if not video.is_file():
        raise ProcessError(f"{video}: no such video file")
    if options.emoca_input not in ("source", "frames"):
        raise ProcessError(f"emoca_input must be 'source' or 'frames', got {options.emoca_input!r}")
    if masks is None and mask_method is None:
        mask_method = "mediapipe"  # no masks given: compute them (needs the optional extra)
    if mask_method not in (None, "mediapipe"):
        raise ProcessError(f"unknown mask_method {mask_method!r}; the one built in is 'mediapipe'")
    masker = mediapipe_head_masker() if mask_method == "mediapipe" else None  # fails before any output
    mask_source = Path(masks) if masks is not None else None
    if mask_source is not None and not mask_source.exists():
        raise ProcessError(f"{mask_source}: mask folder/video does not exist")
    try:
        info = probe_video(video)
    except MediaError as exc:
        raise ProcessError(str(exc)) from exc
    crop = CropBox.centre_square(info.width, info.height) if options.crop == "centre" else CropBox.parse(options.crop)
    try:
        crop.check_inside(info.width, info.height, str(video))
    except MediaError as exc:
        raise ProcessError(str(exc)) from exc
    if crop.w != crop.h:
        raise ProcessError(f"--crop {options.crop}: the crop must be square (the subject is {options.size}x{options.size})")
    source_camera, focal_note = source_intrinsics(info.width, info.height, options.focal, options.fov_degrees)
    camera = crop_intrinsics(source_camera, crop, options.size)
    # EMOCA first: it is cheap and refuses bad input before the long decode.
    emoca_fps = info.fps if options.emoca_input == "source" else FPS
    emoca_frames = info.num_frames if options.emoca_input == "source" else None
    try:
        codes = load_emoca_codes(emoca_root, video.stem, num_frames=emoca_frames,
                                 max_missing_fraction=options.max_missing_fraction,
                                 max_gap_frames=int(round(options.max_gap_seconds * emoca_fps)),
                                 face_index=options.face_index, first_frame_number=options.first_frame_number)
    except EmocaError as exc:
        raise ProcessError(str(exc)) from exc
    flame = resample_codes(codes.listener, emoca_fps, FPS, LISTENER_ROTATIONS)  # [T,56] at 25 fps
    translation = None
    if codes.cam is not None and codes.crop is not None:
        face_crop = codes.crop.copy()  # [T0,3] centre x, centre y, size in EMOCA's input pixels
        if options.emoca_input == "source":
            scale = options.size / crop.w
            face_crop[:, 0] = (face_crop[:, 0] - crop.x) * scale
            face_crop[:, 1] = (face_crop[:, 1] - crop.y) * scale
            face_crop[:, 2] *= scale
        translation = resample_codes(weak_perspective_to_translation(codes.cam, face_crop, fx=camera.fx, fy=camera.fy,
                                                                     cx=camera.cx, cy=camera.cy), emoca_fps, FPS)

    tolerance = int(round(options.length_tolerance_seconds * FPS))
    expected_frames = resampled_length(info.num_frames, info.fps, FPS)  # what ffmpeg's fps filter gives, +-1
    if abs(expected_frames - len(flame)) > tolerance + 1:
        raise ProcessError(f"{codes.source}: EMOCA gives {len(flame)} frames at {FPS} fps but {video} has "
                           f"{info.num_frames} frames at {info.fps:g} fps (~{expected_frames} at {FPS} fps); more than "
                           f"the {tolerance}-frame tolerance (wrong EMOCA folder, or set --emoca_input)")
    settings = {"video": video.name, "masks": str(mask_source) if mask_source else None,
                "mask_method": mask_method, **dataclasses.asdict(options)}
    _check_settings(out, settings, overwrite)

    frames_dir, masks_dir = out / "frames", out / "masks"
    if frames_dir.is_dir() and not overwrite:
        num_frames = len(list(frames_dir.glob("*.png")))
    else:
        try:
            num_frames = write_frames(video, frames_dir, crop, options.size, max_frames=len(flame) + tolerance)
        except MediaError as exc:
            raise ProcessError(str(exc)) from exc
    if abs(num_frames - len(flame)) > tolerance:
        raise ProcessError(f"{codes.source}: EMOCA gives {len(flame)} frames at {FPS} fps but {video} decodes to "
                           f"{num_frames}; more than the {tolerance}-frame tolerance (wrong EMOCA folder or fps?)")
    num_frames = min(num_frames, len(flame))
    flame = flame[:num_frames]
    translation = translation[:num_frames] if translation is not None else None
    for extra in sorted(frames_dir.glob("*.png"))[num_frames:]:  # frames past the end of the codes
        extra.unlink()
    if not masks_dir.is_dir() or overwrite:
        write_masks(mask_source, masker, frames_dir, masks_dir, source_size=(info.width, info.height), crop=crop,
                    size=options.size, num_frames=num_frames, threshold=options.mask_threshold)
    save_npy(out / "flame.npy", flame.astype(np.float32))
    if translation is not None:
        save_npy(out / "translation.npy", translation.astype(np.float32))
    if not (out / "background.png").is_file() or overwrite:
        write_background(frames_dir, masks_dir, out / "background.png", num_frames, options.background_frames,
                         options.background_dilate)
    meta = {"fps": FPS, "width": options.size, "height": options.size, "fx": camera.fx, "fy": camera.fy,
            "cx": camera.cx, "cy": camera.cy}
    save_json(out / "meta.json", meta)
    train_ids, val_ids = default_split(num_frames, options.val_fraction)
    save_json(out / "splits.json", {"train": train_ids, "val": val_ids})
    provenance = {
        "settings": settings, "source": {"fps": info.fps, "width": info.width, "height": info.height,
                                         "frames": info.num_frames},
        "crop": dataclasses.asdict(crop), "intrinsics": {"source": dataclasses.asdict(source_camera),
                                                          "note": focal_note, "output": meta},
        "num_frames": num_frames, "emoca": codes.report(), "emoca_notes": codes.notes,
        "translation": "from EMOCA cam.npy + crop.npy" if translation is not None else
        "not written (EMOCA output has no cam.npy + crop.npy)",
    }
    save_json(out / "process.json", provenance)
    return provenance


def _check_settings(out: Path, settings: dict, overwrite: bool) -> None:
    path = out / "process_settings.json"
    changed = changed_settings(path, settings)
    if changed and not overwrite:
        raise ProcessError(f"{out}: processed before with different settings ({', '.join(changed)}); "
                           f"pass --overwrite to redo every stage")
    save_json(path, settings)


@cli_main("data_utils.process")
def main(argv: list[str] | None = None) -> int:
    parser = cli_parser("data_utils.process", __doc__)
    parser.add_argument("video", help="the subject video, e.g. data/<ID>/<ID>.mp4")
    parser.add_argument("--emoca", required=True, help="EMOCA output folder for this video")
    parser.add_argument("--out", default=None, help="subject folder (default: the video's folder)")
    parser.add_argument("--masks", default=None, help="your masks: a folder of images or a mask video")
    parser.add_argument("--mask_method", choices=("mediapipe",), default=None,
                        help="compute masks (the default when --masks is not given)")
    parser.add_argument("--overwrite", action="store_true", help="redo every stage")
    add_config_flags(parser, ProcessOptions)
    args = parser.parse_args(argv)
    options = config_from_flags(ProcessOptions, args)
    provenance = process_subject(args.video, args.emoca, args.out, options, masks=args.masks,
                                 mask_method=args.mask_method, overwrite=args.overwrite)
    out = args.out or str(Path(args.video).parent)
    print(f"{out}: {provenance['num_frames']} frames at {FPS} fps, {options.size}x{options.size}; "
          f"{provenance['translation']}")
    for note in provenance["emoca_notes"]:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
