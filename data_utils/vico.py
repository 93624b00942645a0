"""The ViCo release (Zhou et al., ECCV 2022) -> the dyadic corpus of DESIGN.md §3.1.

    python -m data_utils.vico --root <vico> --emoca <emoca_out> --wav2vec <wav2vec2 dir> --out <corpus> \
        [--split official|identity] [--source_fps 30] [--device auto] [--overwrite] ...

Input (what the release holds; docs/DATA.md lists the sources each item was checked against):
* ``<vico>/*.csv`` — one row per speaking/listening pair. The full release's CSV (``RLD_data.csv``) has the
  columns ``attitude`` (the listener's: ``positive``, ``neutral`` or ``negative``), ``audio`` (name in
  ``audios/``), ``listener``, ``speaker`` (video names in ``videos/``), ``listener_id``, ``speaker_id`` and
  ``data_split`` (``train`` / ``test``); the challenge layout has ``train.csv``/``test.csv``... with the columns
  ``video_id``, ``uuid``, ``speaker_id``, ``listener_id`` (no attitude) and files
  ``videos/<uuid>.listener.mp4``, ``videos/<uuid>.speaker.mp4``, ``audios/<uuid>.wav``.
* ``<vico>/videos/*.mp4`` at 30 fps and ``<vico>/audios/*.wav`` (the speaker's voice).
* ``<emoca_out>`` — EMOCA run on every video (``data_utils.emoca_io`` finds each video's codes by name).

Per clip (one CSV row, clip id = the listener video's name or the uuid):
1. Both videos must run at ``source_fps``; the speaker audio must last as long as the speaker video
   within ``sync_tolerance_seconds`` (the sync check).
2. EMOCA codes are read, frames without a face interpolated (refused beyond ``max_missing_fraction`` or a
   gap over ``max_gap_seconds``); listener ``[N,56]`` and speaker ``[N,50]`` are resampled 30 -> 25 fps
   (linear for expression, slerp for rotations).
3. wav2vec2 features ``[T,768]`` at 25 fps from the speaker audio.
4. The three streams are trimmed to the shortest; a disagreement over ``length_tolerance_seconds`` is
   refused; trimmed frames are recorded.
5. ``clips/<id>/`` (three arrays, ``speaker.wav`` 16 kHz mono, ``clip.json`` provenance and, when the CSV has
   attitudes, ``labels.json`` = ``{"attitude": "<name>"}``) is written under a temporary name and renamed when
   complete: re-running skips finished clips and removes what a killed run left half-written; a crash loses
   only the clip in progress.
Then ``splits/{train,val,test}.txt`` (official split, or identity-disjoint with ``--split identity``),
``meta.json`` (with ``"attitudes"`` when labelled) and ``manifest.json`` (provenance of every clip, refusals and
their reasons). The command exits non-zero when the input is unusable or every clip was refused.
"""
from __future__ import annotations

import csv
import dataclasses
import glob
import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from brain.data import SPLITS, DyadicCorpus, write_corpus_meta
from data_utils.emoca_io import LISTENER_ROTATIONS, EmocaError, load_emoca_codes
from data_utils.media import read_audio, write_wav
from data_utils.resample import resample_codes
from data_utils.wav2vec import SAMPLE_RATE, Wav2VecError, Wav2VecExtractor
from utils.arrays import check_array
from utils.atomic import atomic_output, save_json
from utils.cli import cli_main, cli_parser
from utils.config import add_config_flags, changed_settings, config_from_flags
from utils.errors import InputError
from utils.flame import AUDIO_DIM, FLAME_DIM, FPS, SPEAKER_EXP_DIM
from utils.media import MediaError, probe_video
from utils.runtime import configure_threads

OFFICIAL_SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "dev": "val",
                        "test": "test"}  # any other name (e.g. an out-of-domain set) goes to test
ATTITUDES = ("positive", "neutral", "negative")  # the listener attitudes of the release's ``attitude`` column


class VicoError(InputError):
    """Input that makes the whole conversion impossible (no CSV, missing columns, duplicate ids...)."""


class ClipRefused(InputError):
    """One clip that cannot be converted; the reason names the file and the numbers."""


@dataclass
class VicoOptions:
    source_fps: float = 30.0  # ViCo videos run at 30 fps; anything else is refused
    fps_tolerance: float = 0.05
    sync_tolerance_seconds: float = 0.2  # speaker audio duration vs speaker video frames
    length_tolerance_seconds: float = 0.2  # largest disagreement between the three streams before trimming
    max_missing_fraction: float = 0.1  # EMOCA frames without a face, per video
    max_gap_seconds: float = 0.5  # longest run of frames without a face that may be interpolated
    min_seconds: float = 2.0  # shorter clips are refused
    split: str = "official"  # official | identity (listener identities disjoint across splits)
    val_fraction: float = 0.1  # official split without val clips: this share of train becomes val
    test_fraction: float = 0.15  # identity split only
    seed: int = 0
    layer: int = -1  # wav2vec2 hidden state (-1: last layer)
    chunk_seconds: float = 30.0
    context_seconds: float = 5.0
    face_index: int = 0


@dataclass
class VicoRow:
    clip_id: str
    listener_video: Path
    speaker_video: Path
    audio: Path
    official_split: str
    speaker_id: str
    listener_id: str
    attitude: str | None  # None when the CSV has no attitude column (the challenge layout)
    csv_file: str
    csv_line: int


# --- the index ----------------------------------------------------------------------------------------
def read_vico_index(root: str | Path, csv_path: str | Path | None = None) -> list[VicoRow]:
    """All rows of the release's CSV file(s) as :class:`VicoRow` (files are checked per clip later)."""
    root = Path(root)
    if not root.is_dir():
        raise VicoError(f"{root}: ViCo folder does not exist")
    csv_files = [Path(csv_path)] if csv_path else sorted(root.glob("*.csv"))
    if not csv_files:
        raise VicoError(f"{root}: no CSV annotation file (expected the release's *.csv next to videos/ and audios/)")
    tables = {path: _read_csv(path) for path in csv_files}
    full = [path for path, rows in tables.items() if rows and {"listener", "speaker", "audio"} <= set(rows[0])]
    per_split = [path for path, rows in tables.items() if rows and "uuid" in rows[0]]
    if len(full) > 1:
        raise VicoError(f"{root}: several release CSVs ({', '.join(p.name for p in full)}); pick one with --csv")
    rows: list[VicoRow] = []
    if full:
        path = full[0]
        for number, row in enumerate(tables[path], start=2):
            for column in ("listener", "speaker", "audio"):
                if not row.get(column):
                    raise VicoError(f"{path}, line {number}: empty '{column}'")
            rows.append(VicoRow(
                clip_id=_stem(row["listener"]), listener_video=root / "videos" / f"{_stem(row['listener'])}.mp4",
                speaker_video=root / "videos" / f"{_stem(row['speaker'])}.mp4",
                audio=root / "audios" / f"{_stem(row['audio'])}.wav",
                official_split=row.get("data_split", "train") or "train", speaker_id=row.get("speaker_id", ""),
                listener_id=row.get("listener_id", ""), attitude=_attitude(row), csv_file=path.name,
                csv_line=number))
    elif per_split:
        for path in per_split:
            for number, row in enumerate(tables[path], start=2):
                uuid = row["uuid"]
                rows.append(VicoRow(
                    clip_id=uuid, listener_video=root / "videos" / f"{uuid}.listener.mp4",
                    speaker_video=root / "videos" / f"{uuid}.speaker.mp4", audio=root / "audios" / f"{uuid}.wav",
                    official_split=path.stem, speaker_id=row.get("speaker_id", ""),
                    listener_id=row.get("listener_id", ""), attitude=_attitude(row), csv_file=path.name,
                    csv_line=number))
    else:
        columns = {path.name: sorted(rows[0]) if rows else [] for path, rows in tables.items()}
        raise VicoError(f"{root}: no CSV with the ViCo columns (listener, speaker, audio) or (uuid); found {columns}")
    seen: dict[str, int] = {}
    for row in rows:
        seen[row.clip_id] = seen.get(row.clip_id, 0) + 1
    duplicates = [clip_id for clip_id, count in seen.items() if count > 1]
    if duplicates:
        raise VicoError(f"{root}: clip id(s) used by several rows: {', '.join(duplicates[:5])}")
    if not rows:
        raise VicoError(f"{root}: the CSV lists no clips")
    if len({row.attitude is None for row in rows}) > 1:
        raise VicoError(f"{root}: some CSVs have an 'attitude' column and some do not; convert them separately")
    return rows


def _attitude(row: dict) -> str | None:
    """The row's attitude as written (lower case), or None when the CSV has no such column."""
    return row["attitude"].lower() if "attitude" in row else None


def _read_csv(path: Path) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(handle)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise VicoError(f"{path}: unreadable CSV ({exc})") from exc


def _stem(name: str) -> str:
    return Path(name).stem if name.endswith((".mp4", ".wav")) else name


# --- one clip -----------------------------------------------------------------------------------------
def convert_clip(row: VicoRow, emoca_root: Path, extractor_factory, options: VicoOptions) -> tuple[dict, dict]:
    """Convert one row; returns ``(arrays, provenance)``. Raises :class:`ClipRefused` with the reason."""
    try:
        listener_info = probe_video(row.listener_video)
        speaker_info = probe_video(row.speaker_video)
        for info in (listener_info, speaker_info):
            if abs(info.fps - options.source_fps) > options.fps_tolerance:
                raise ClipRefused(f"{info.path}: {info.fps:g} fps, expected {options.source_fps:g} (source_fps)")
        audio = read_audio(row.audio, SAMPLE_RATE)
    except MediaError as exc:
        raise ClipRefused(str(exc)) from exc
    fps = options.source_fps
    audio_seconds = len(audio) / SAMPLE_RATE
    speaker_seconds = speaker_info.num_frames / fps
    if abs(audio_seconds - speaker_seconds) > options.sync_tolerance_seconds:
        raise ClipRefused(f"{row.audio}: audio lasts {audio_seconds:.3f} s but the speaker video {row.speaker_video.name} "
                          f"has {speaker_info.num_frames} frames ({speaker_seconds:.3f} s at {fps:g} fps); "
                          f"more than the {options.sync_tolerance_seconds:g} s sync tolerance")
    emoca_limits = {"max_missing_fraction": options.max_missing_fraction, "face_index": options.face_index,
                    "max_gap_frames": int(round(options.max_gap_seconds * fps))}
    try:
        listener_codes = load_emoca_codes(emoca_root, row.listener_video.stem, num_frames=listener_info.num_frames,
                                          **emoca_limits)
        speaker_codes = load_emoca_codes(emoca_root, row.speaker_video.stem, num_frames=speaker_info.num_frames,
                                         **emoca_limits)
    except EmocaError as exc:
        raise ClipRefused(str(exc)) from exc
    listener = resample_codes(listener_codes.listener, fps, FPS, LISTENER_ROTATIONS)  # [Tl,56]
    speaker_exp = resample_codes(speaker_codes.speaker, fps, FPS)  # [Ts,50]
    audio_frames = int(len(audio) * FPS // SAMPLE_RATE)
    try:
        speaker_audio = extractor_factory()(audio, audio_frames)  # [Ta,768]
    except Wav2VecError as exc:
        raise ClipRefused(f"{row.audio}: {exc}") from exc
    lengths = {"speaker_audio": len(speaker_audio), "speaker_exp": len(speaker_exp), "listener": len(listener)}
    num_frames = min(lengths.values())
    tolerance = int(round(options.length_tolerance_seconds * FPS))
    if max(lengths.values()) - num_frames > tolerance:
        detail = ", ".join(f"{name} {count}" for name, count in lengths.items())
        raise ClipRefused(f"clip {row.clip_id}: streams disagree in length at {FPS} fps ({detail} frames), more than "
                          f"the {tolerance}-frame tolerance (listener {row.listener_video.name}, speaker "
                          f"{row.speaker_video.name}, audio {row.audio.name})")
    if num_frames < options.min_seconds * FPS:
        raise ClipRefused(f"clip {row.clip_id}: {num_frames} frames ({num_frames / FPS:.2f} s), shorter than "
                          f"min_seconds={options.min_seconds:g}")
    arrays = {"speaker_audio": speaker_audio[:num_frames], "speaker_exp": speaker_exp[:num_frames],
              "listener": listener[:num_frames]}
    for name, width in (("speaker_audio", AUDIO_DIM), ("speaker_exp", SPEAKER_EXP_DIM), ("listener", FLAME_DIM)):
        arrays[name] = check_array(arrays[name], width, f"clip {row.clip_id}, {name}", error=ClipRefused)
    arrays["speaker_wav"] = audio[:int(round(num_frames * SAMPLE_RATE / FPS))]
    provenance = {
        "clip_id": row.clip_id, "csv": row.csv_file, "official_split": row.official_split,
        "speaker_id": row.speaker_id, "listener_id": row.listener_id, "attitude": row.attitude,
        "sources": {"listener_video": _relative(row.listener_video), "speaker_video": _relative(row.speaker_video),
                    "speaker_audio": _relative(row.audio), "listener_emoca": str(listener_codes.source),
                    "speaker_emoca": str(speaker_codes.source)},
        "source_fps": fps, "source_frames": {"listener": listener_info.num_frames, "speaker": speaker_info.num_frames},
        "audio_seconds": round(audio_seconds, 4),
        "frames_25fps": lengths, "num_frames": num_frames,
        "trimmed_frames": {name: count - num_frames for name, count in lengths.items()},
        "emoca": {"listener": listener_codes.report(), "speaker": speaker_codes.report()},
    }
    return arrays, provenance


def check_attitude(row: VicoRow) -> None:
    """Refuse a row whose attitude is not one of the release's (an empty cell included)."""
    if row.attitude is not None and row.attitude not in ATTITUDES:
        raise ClipRefused(f"{row.csv_file}, line {row.csv_line}: attitude {row.attitude!r} is not one of "
                          f"{', '.join(ATTITUDES)}")


def _relative(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def write_clip(clip_dir: Path, arrays: dict, provenance: dict) -> None:
    """Write a clip folder under a temporary name and rename it when complete (``clip.json`` last)."""
    with atomic_output(clip_dir, directory=True) as tmp:
        for name in ("speaker_audio", "speaker_exp", "listener"):
            np.save(tmp / f"{name}.npy", arrays[name])
        write_wav(tmp / "speaker.wav", arrays["speaker_wav"], SAMPLE_RATE)
        if provenance["attitude"] is not None:
            save_json(tmp / LABELS_FILE, {"attitude": provenance["attitude"]})
        save_json(tmp / "clip.json", provenance)


LABELS_FILE = "labels.json"


def _sync_labels(clip_dir: Path, row: VicoRow) -> None:
    """A finished clip's ``labels.json`` follows the CSV (written by an older run, or the CSV was corrected)."""
    if row.attitude is None:
        return
    path = clip_dir / LABELS_FILE
    try:
        current = json.loads(path.read_text())
    except (OSError, ValueError):  # missing, or unreadable
        current = None
    if current != {"attitude": row.attitude}:
        save_json(path, {"attitude": row.attitude})


def _remove_unfinished(clips_dir: Path, clip_id: str) -> None:
    """Delete what a run killed while writing this clip left behind (its temporary folders)."""
    for leftover in clips_dir.glob(f"{glob.escape(clip_id)}.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)


# --- splits -------------------------------------------------------------------------------------------
def _ordered(ids, seed: int) -> list[str]:
    """A deterministic shuffle that does not depend on Python's hash seed."""
    return sorted(ids, key=lambda key: hashlib.sha1(f"{seed}:{key}".encode()).hexdigest())


def official_splits(rows: list[VicoRow], val_fraction: float, seed: int) -> dict[str, list[str]]:
    """The release's own split; when it has no validation clips, ``val_fraction`` of train becomes val."""
    splits: dict[str, list[str]] = {name: [] for name in SPLITS}
    for row in rows:
        splits[OFFICIAL_SPLIT_NAMES.get(row.official_split.lower(), "test")].append(row.clip_id)
    if not splits["val"] and len(splits["train"]) >= 2:
        count = max(1, int(round(len(splits["train"]) * val_fraction)))
        held_out = set(_ordered(splits["train"], seed)[:count])
        splits["val"] = [c for c in splits["train"] if c in held_out]
        splits["train"] = [c for c in splits["train"] if c not in held_out]
    return splits


def identity_splits(rows: list[VicoRow], val_fraction: float, test_fraction: float,
                    seed: int) -> dict[str, list[str]]:
    """No listener identity appears in two splits; whole identities are assigned until each share is met."""
    by_identity: dict[str, list[str]] = {}
    for row in rows:
        by_identity.setdefault(row.listener_id or row.clip_id, []).append(row.clip_id)
    identities = _ordered(by_identity, seed)
    splits: dict[str, list[str]] = {name: [] for name in SPLITS}
    targets = (("test", test_fraction * len(rows)), ("val", val_fraction * len(rows)))
    position = 0
    for split, target in targets:
        while position < len(identities) - 1 and (not splits[split] or len(splits[split]) < target):
            splits[split] += by_identity[identities[position]]
            position += 1
    for identity in identities[position:]:
        splits["train"] += by_identity[identity]
    return splits


# --- the whole release --------------------------------------------------------------------------------
def build_corpus(root: str | Path, emoca_root: str | Path, wav2vec_model: str | Path, out: str | Path,
                 options: VicoOptions | None = None, *, csv_path: str | Path | None = None, device: str = "auto",
                 overwrite: bool = False, progress: bool = True) -> dict:
    """Convert a ViCo release into a §3.1 corpus at ``out``; returns the manifest (also written to disk)."""
    options = options or VicoOptions()
    if options.split not in ("official", "identity"):
        raise VicoError(f"split must be 'official' or 'identity', got {options.split!r}")
    emoca_root, out = Path(emoca_root), Path(out)
    if not emoca_root.is_dir():
        raise VicoError(f"{emoca_root}: EMOCA output folder does not exist")
    rows = read_vico_index(root, csv_path)
    _check_settings(out, options, overwrite)

    extractor: list[Wav2VecExtractor] = []

    def extractor_factory() -> Wav2VecExtractor:  # loaded on the first clip that needs it
        if not extractor:
            try:
                extractor.append(Wav2VecExtractor(wav2vec_model, device, layer=options.layer,
                                                  chunk_seconds=options.chunk_seconds,
                                                  context_seconds=options.context_seconds))
            except (Wav2VecError, RuntimeError) as exc:
                raise VicoError(str(exc)) from exc
        return extractor[0]

    status: dict[str, str] = {}
    refused: dict[str, str] = {}
    bar = tqdm(rows, desc="ViCo clips", unit="clip", disable=not progress)
    for row in bar:
        clip_dir = out / "clips" / row.clip_id
        _remove_unfinished(clip_dir.parent, row.clip_id)
        try:
            check_attitude(row)
            if (clip_dir / "clip.json").is_file() and not overwrite:
                _sync_labels(clip_dir, row)
                status[row.clip_id] = "skipped"
                continue
            arrays, provenance = convert_clip(row, emoca_root, extractor_factory, options)
        except ClipRefused as exc:
            status[row.clip_id], refused[row.clip_id] = "refused", str(exc)
            bar.write(f"refused {row.clip_id}: {exc}")
            continue
        write_clip(clip_dir, arrays, provenance)
        status[row.clip_id] = "written"
        bar.set_postfix(written=sum(s == "written" for s in status.values()), refused=len(refused))

    available = [row for row in rows if status[row.clip_id] != "refused"]
    if not available:  # nothing to train on: only the reasons are written, no corpus that looks usable
        manifest = _manifest(out, rows, status, refused, {name: [] for name in SPLITS}, options, wav2vec_model)
        save_json(out / "manifest.json", manifest)
        return manifest
    if options.split == "official":
        splits = official_splits(available, options.val_fraction, options.seed)
    else:
        splits = identity_splits(available, options.val_fraction, options.test_fraction, options.seed)
    write_corpus_meta(out, attitudes=ATTITUDES if rows[0].attitude is not None else None)
    for split, ids in splits.items():
        with atomic_output(out / "splits" / f"{split}.txt") as tmp:
            tmp.write_text("".join(f"{clip_id}\n" for clip_id in ids))
    corpus = DyadicCorpus(out)  # the contract reader must accept every clip we list
    for row in available:
        corpus.load_clip(row.clip_id)
    manifest = _manifest(out, rows, status, refused, splits, options, wav2vec_model)
    save_json(out / "manifest.json", manifest)
    return manifest


def _check_settings(out: Path, options: VicoOptions, overwrite: bool) -> None:
    """Refuse to mix clips made with different settings in one corpus (unless overwriting)."""
    path = out / "build_settings.json"
    current = dataclasses.asdict(options)
    changed = changed_settings(path, current, ignore=("split", "val_fraction", "test_fraction", "seed"))
    if changed and not overwrite:
        raise VicoError(f"{out}: built before with different settings ({', '.join(changed)}); "
                        f"pass --overwrite to rebuild every clip, or choose a new --out")
    save_json(path, current)


def _manifest(out: Path, rows, status, refused, splits, options, wav2vec_model) -> dict:
    clips = {}
    for row in rows:
        clip_json = out / "clips" / row.clip_id / "clip.json"
        entry = json.loads(clip_json.read_text()) if status[row.clip_id] != "refused" else {
            "clip_id": row.clip_id, "official_split": row.official_split}
        entry["status"] = status[row.clip_id]
        if row.clip_id in refused:
            entry["refused_because"] = refused[row.clip_id]
        clips[row.clip_id] = entry
    listener_ids = {split: {clips[c].get("listener_id") for c in ids} for split, ids in splits.items()}
    speaker_ids = {split: {clips[c].get("speaker_id") for c in ids} for split, ids in splits.items()}
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wav2vec_model": str(wav2vec_model), "settings": dataclasses.asdict(options),
        "counts": {name: sum(s == name for s in status.values()) for name in ("written", "skipped", "refused")},
        "splits": {split: len(ids) for split, ids in splits.items()},
        "listener_overlap_with_train": {s: len(listener_ids[s] & listener_ids["train"]) for s in ("val", "test")},
        "speaker_overlap_with_train": {s: len(speaker_ids[s] & speaker_ids["train"]) for s in ("val", "test")},
        "clips": clips,
    }


@cli_main("data_utils.vico")
def main(argv: list[str] | None = None) -> int:
    parser = cli_parser("data_utils.vico", __doc__)
    parser.add_argument("--root", required=True, help="ViCo release: *.csv, videos/, audios/")
    parser.add_argument("--emoca", required=True, help="EMOCA outputs for the release's videos")
    parser.add_argument("--wav2vec", required=True, help="wav2vec2 directory (save_pretrained) or hub id")
    parser.add_argument("--out", required=True, help="corpus folder to write (DESIGN.md §3.1)")
    parser.add_argument("--csv", default=None, help="the annotation CSV when the root holds several")
    parser.add_argument("--device", default="auto", help="wav2vec2 device: auto, cpu, cuda")
    parser.add_argument("--overwrite", action="store_true", help="rebuild clips that already exist")
    add_config_flags(parser, VicoOptions)
    args = parser.parse_args(argv)
    configure_threads()
    options = config_from_flags(VicoOptions, args)
    manifest = build_corpus(args.root, args.emoca, args.wav2vec, args.out, options, csv_path=args.csv,
                            device=args.device, overwrite=args.overwrite)
    counts = manifest["counts"]
    print(f"{args.out}: written {counts['written']}, skipped (already done) {counts['skipped']}, "
          f"refused {counts['refused']}; splits " + ", ".join(f"{k} {v}" for k, v in manifest["splits"].items()))
    for clip_id, entry in manifest["clips"].items():
        if entry["status"] == "refused":
            print(f"  refused {clip_id}: {entry['refused_because']}")
    for split, count in manifest["splits"].items():
        if count == 0:
            print(f"  warning: the {split} split is empty")
    if counts["written"] + counts["skipped"] == 0:
        raise VicoError(f"{args.root}: every clip was refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
