"""In-memory batching over packed uint8 arrays: no DataLoader, no per-sample Python work.

A batch is gathered with one fancy index into the (memory-mapped) array, moved to the device as
uint8 and converted there; NHWC -> NCHW by ``permute`` is already channels_last in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import distributed
from .errors import DebiaslabError

IN_MEMORY_LIMIT = 4 << 30  # splits smaller than this are read into RAM once


class PreparedSplit:
    """One packed split: images (N, S, S, 3) uint8, memory-mapped, and its 0/1 label table."""

    def __init__(self, prepared_dir: str | Path, split: str):
        prepared_dir = Path(prepared_dir)
        for name in (f"{split}.npy", f"{split}_labels.csv"):
            if not (prepared_dir / name).is_file():
                raise DebiaslabError(f"{prepared_dir / name}: not found (run the prepare stage)")
        self.images = np.load(prepared_dir / f"{split}.npy", mmap_mode="r")
        self.labels = pd.read_csv(prepared_dir / f"{split}_labels.csv")
        self.path = prepared_dir / f"{split}.npy"
        if len(self.images) != len(self.labels):
            raise DebiaslabError(f"{prepared_dir}: {split}.npy and {split}_labels.csv disagree "
                                 "in length (rerun prepare)")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def attributes(self) -> list[str]:
        return list(self.labels.columns[1:])

    def label_matrix(self, attributes: list[str]) -> np.ndarray:
        """(N, K) 0/1 labels for several attributes."""
        return np.stack([self.label(a) for a in attributes], 1)

    def label(self, attribute: str) -> np.ndarray:
        if attribute not in self.attributes:
            raise DebiaslabError(
                f"{self.path.parent}: no attribute {attribute!r} in the prepared data "
                f"(valid: {', '.join(self.attributes)})")
        return self.labels[attribute].to_numpy(np.int64)


def multilabel_columns(split: PreparedSplit, protected: str | None,
                       attributes_protected: list[str]) -> tuple[list[str], str]:
    """(labels, protected column) of the multi-label stages (train_multilabel, leakage).

    ``protected`` is ``multilabel.protected``: that column is protected and every other one is a
    label. ``None`` keeps the CelebA setting: ``attributes.protected[0]`` is protected and no
    attribute of ``attributes.protected`` is a label. The protected column must hold both values.
    """
    excluded = list(attributes_protected) if protected is None else [protected]
    protected = excluded[0]
    if protected not in split.attributes:
        raise DebiaslabError(
            f"{split.path.parent}: no attribute {protected!r} in the prepared data (valid: "
            f"{', '.join(split.attributes)}); set multilabel.protected to the protected column")
    labels = [a for a in split.attributes if a not in excluded]
    if not labels:
        raise DebiaslabError(f"{split.path.parent}: no label columns besides the protected "
                             f"{protected!r}; a multi-label classifier needs at least one")
    values = np.unique(split.label(protected))
    if len(values) < 2:
        value = values[0] if len(values) else "?"
        raise DebiaslabError(
            f"{split.path.parent}: the {split.path.stem} split has {protected}={value} on every one "
            f"of its {len(split)} images; the adversary and the leakage attacker need both values "
            "of the protected column in every split")
    return labels, protected


def check_both_values(split: PreparedSplit, labels: list[str]) -> None:
    """Every label takes both values in ``split``: a classifier's training and model selection
    need them (a rare COCO category may have no image among a split's)."""
    for name in labels:
        values = np.unique(split.label(name))
        if len(values) < 2:
            raise DebiaslabError(
                f"{split.path.parent}: label {name!r} is {values[0]} on every image of the "
                f"{split.path.stem} split; the multi-label classifier needs both values of every "
                "label in train and val (leave the column out of the table, e.g. coco_import --exclude)")


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

    def batches(self, batch_size: int, device: torch.device, *, order: np.ndarray | None = None,
                generator: torch.Generator | None = None, hflip: bool = False,
                channels_last: bool = True, shard: bool = False) -> Iterator[Batch]:
        """Batches over ``order`` (positions in this split; default: all, in order).

        With ``shard``, each of several data-parallel processes gets its own part of every
        batch; all draw the same random numbers, so ``batch_size`` is the global batch size.
        """
        order = np.arange(len(self)) if order is None else order
        world = distributed.world_size() if shard else 1
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            flip = (torch.rand(len(index), generator=generator) < 0.5) if hflip else None
            if world > 1:
                if len(index) < world:  # a tail too small to give every process a sample
                    continue
                # flip[i] goes with the i-th *sorted* position (see batch), so sort, then split
                part = distributed.local_part(np.arange(len(index)))
                distributed.batch_share = len(part) / len(index)
                index, flip = np.sort(index)[part], None if flip is None else flip[part]
            yield self.batch(index, device, channels_last=channels_last, flip=flip)


def shuffled_order(n: int, generator: torch.Generator) -> np.ndarray:
    return torch.randperm(n, generator=generator).numpy()


def group_balanced_order(groups: np.ndarray, generator: torch.Generator) -> np.ndarray:
    """An epoch order in which groups alternate, so every even-sized batch is half of each group.

    Each group contributes min(group sizes) samples, drawn afresh every epoch (Wang et al. 2019
    train the adversary on protected-balanced batches).
    """
    members = [np.flatnonzero(groups == k) for k in (0, 1)]
    m = min(len(idx) for idx in members)
    if m == 0:
        raise ValueError("group-balanced batches need samples of both protected groups")
    picks = [idx[torch.randperm(len(idx), generator=generator).numpy()[:m]] for idx in members]
    return np.stack(picks, 1).ravel()
