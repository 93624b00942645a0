"""A subject's frames as batches of tensors on the training (or evaluation) device, without worker processes.

    frames = SubjectFrames(subject, subject.train_ids, device, preload_max_gb=8)
    batch = frames.batch([5, 17])   # positions in the id list -> dict of tensors on ``device``
    batch["image"]    # float [B,H,W,3] in [0,1]
    batch["mask"]     # float [B,H,W,1] in {0,1}: head + neck
    batch["mouth"]    # float [B,H,W,1] in {0,1}: inside the lips, or None when the subject has no mouth masks
    batch["flame"], batch["translation"]  # [B,56], [B,3]

When the split fits in ``preload_max_gb`` (uint8: 3 bytes a pixel for the image, one for both masks) it is
decoded once by a thread pool (Pillow releases the GIL), chunk by chunk, and kept on ``device``: on a GPU a
training step then costs no decoding, no host copies and no DataLoader workers (4,500 frames at 512x512:
4.7 GB of GPU memory, and host memory holds one chunk at a time). Otherwise each batch is decoded when asked
for, through the subject's bounded frame cache, by the same threads.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from scene.subject import Subject

HEAD_BIT, MOUTH_BIT = 1, 2  # the two masks packed into one uint8 per pixel
CHUNK_FRAMES = 64


class SubjectFrames:
    def __init__(self, subject: Subject, ids: list[int], device: torch.device, *, mean_translation: np.ndarray,
                 preload_max_gb: float = 8.0, threads: int = 8):
        self.subject, self.ids, self.device = subject, list(ids), device
        self.has_mouth = subject.has_mouth_masks
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads))
        translation = (subject.translation[self.ids] if subject.translation is not None
                       else np.tile(np.asarray(mean_translation, np.float32), (len(self.ids), 1)))
        self.flame = torch.as_tensor(subject.flame[self.ids], dtype=torch.float32, device=device)  # [N,56]
        self.translation = torch.as_tensor(translation, dtype=torch.float32, device=device)  # [N,3]
        self.preloaded = len(self.ids) * subject.width * subject.height * 4 <= preload_max_gb * 1024 ** 3
        self._images = self._masks = None
        if self.preloaded:
            self._images, self._masks = self._preload()

    def __len__(self) -> int:
        return len(self.ids)

    def _decode(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``index`` as uint8 ``[H,W,3]`` and its packed masks ``[H,W]``."""
        packed = np.where(self.subject.mask(index) > 127, HEAD_BIT, 0).astype(np.uint8)
        if self.has_mouth:
            packed |= np.where(self.subject.mouth_mask(index) > 127, MOUTH_BIT, 0).astype(np.uint8)
        return self.subject.frame(index), packed

    def _decode_many(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        decoded = list(self._pool.map(self._decode, indices))
        images = torch.from_numpy(np.stack([image for image, _ in decoded]))
        masks = torch.from_numpy(np.stack([mask for _, mask in decoded]))
        return images.to(self.device), masks.to(self.device)

    def _preload(self) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = self.subject.height, self.subject.width
        images = torch.empty(len(self.ids), height, width, 3, dtype=torch.uint8, device=self.device)
        masks = torch.empty(len(self.ids), height, width, dtype=torch.uint8, device=self.device)
        for start in range(0, len(self.ids), CHUNK_FRAMES):
            chunk = self.ids[start:start + CHUNK_FRAMES]
            images[start:start + len(chunk)], masks[start:start + len(chunk)] = self._decode_many(chunk)
        return images, masks

    def batch(self, positions) -> dict:
        """The frames at ``positions`` (indices into :attr:`ids`: a list, or a LongTensor already on the device,
        which for preloaded frames costs no host sync) as float tensors on the device; ``ids`` (the subject's
        frame indices) only for a list."""
        host = None if torch.is_tensor(positions) else [int(p) for p in positions]
        index = torch.as_tensor(positions if host is None else host, dtype=torch.long).to(self.device)
        if self.preloaded:
            images, masks = self._images[index], self._masks[index]
        else:
            images, masks = self._decode_many([self.ids[p] for p in (host or index.tolist())])
        return {"ids": None if host is None else [self.ids[p] for p in host],
                "flame": self.flame[index], "translation": self.translation[index],
                "image": images.float() / 255.0,
                "mask": (masks & HEAD_BIT).bool().float().unsqueeze(-1),
                "mouth": (masks & MOUTH_BIT).bool().float().unsqueeze(-1) if self.has_mouth else None}

    def batches(self, batch_size: int):
        """Every frame once, in order, ``batch_size`` at a time."""
        for start in range(0, len(self.ids), batch_size):
            yield self.batch(range(start, min(len(self.ids), start + batch_size)))

    def mean_image(self, max_frames: int = 200) -> torch.Tensor:
        """Mean of up to ``max_frames`` evenly spaced frames, float ``[H,W,3]`` in [0,1] on the device."""
        picks = np.unique(np.linspace(0, len(self.ids) - 1, min(max_frames, len(self.ids))).round().astype(int))
        total = torch.zeros(self.subject.height, self.subject.width, 3, dtype=torch.float64, device=self.device)
        for start in range(0, len(picks), CHUNK_FRAMES):
            total += self.batch(picks[start:start + CHUNK_FRAMES].tolist())["image"].double().sum(0)
        return (total / len(picks)).float()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
