"""In-memory batching over packed uint8 arrays: no DataLoader, no per-sample Python work.

A batch is gathered with one fancy index into the (memory-mapped) array, moved to the device as
uint8 and converted there; NHWC -> NCHW by ``permute`` is already channels_last in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

IN_MEMORY_LIMIT = 4 << 30  # splits smaller than this are read into RAM once


@dataclass
class Batch:
    x: torch.Tensor  # (B, 3, S, S) float in [-1, 1]
    y: torch.Tensor  # (B,) or (B, K) float 0/1 targets
    g: torch.Tensor | None  # (B,) long protected labels, where known
    index: torch.Tensor  # (B,) positions in the split


class ArrayDataset:
    def __init__(self, images: np.ndarray, y: np.ndarray, g: np.ndarray | None = None):
        if images.nbytes < IN_MEMORY_LIMIT:
            images = np.ascontiguousarray(images)
        self.images, self.y, self.g = images, np.asarray(y), None if g is None else np.asarray(g)
        if len(self.y) != len(images) or (self.g is not None and len(self.g) != len(images)):
            raise ValueError("images, y and g must have the same length")

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, index: np.ndarray, device: torch.device, *, channels_last: bool = True,
              flip: torch.Tensor | None = None) -> Batch:
        index = np.sort(index)  # sequential reads when the array is memory-mapped
        x = torch.from_numpy(self.images[index]).to(device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        if not channels_last:
            x = x.contiguous()
        if flip is not None:
            x = torch.where(flip.to(device)[:, None, None, None], x.flip(3), x)
        y = torch.from_numpy(self.y[index]).to(device).float()
        g = None if self.g is None else torch.from_numpy(self.g[index]).to(device).long()
        return Batch(x, y, g, torch.from_numpy(index))

    def batches(self, batch_size: int, device: torch.device, *, shuffle: bool = False,
                generator: torch.Generator | None = None, hflip: bool = False,
                channels_last: bool = True) -> Iterator[Batch]:
        n = len(self)
        order = (torch.randperm(n, generator=generator).numpy() if shuffle else np.arange(n))
        for start in range(0, n, batch_size):
            index = order[start:start + batch_size]
            flip = (torch.rand(len(index), generator=generator) < 0.5) if hflip else None
            yield self.batch(index, device, channels_last=channels_last, flip=flip)
