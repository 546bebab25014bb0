"""Glue for the bias-conflicting benchmarks (Colored Digits, or a user's CMNIST / BFFHQ folders):
packed splits with target, bias and aligned columns, and accuracy by alignment. The BiasEnsemble
selection is :mod:`debiaslab.bias_ensemble`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import ArrayDataset, PreparedSplit

SPLITS = ("train", "valid", "test")


@dataclass
class BiasSplit:
    data: ArrayDataset  # y = target class
    bias: np.ndarray
    aligned: np.ndarray  # bool


def load_bias_splits(packed_dir: str | Path) -> dict[str, BiasSplit]:
    """The splits written by :func:`debiaslab.bias_folder.pack_bias_folder`."""
    out = {}
    for split in SPLITS:
        s = PreparedSplit(packed_dir, split)
        target, bias = s.label("target"), s.label("bias")
        out[split] = BiasSplit(ArrayDataset(s.images, target, bias), bias, target == bias)
    return out


def accuracy_by_alignment(pred: np.ndarray, split: BiasSplit) -> dict[str, float]:
    """Accuracy on all samples and on the bias-aligned and bias-conflicting ones."""
    correct = pred == split.data.y
    out = {"accuracy": float(correct.mean())}
    for name, mask in (("aligned", split.aligned), ("conflicting", ~split.aligned)):
        out[f"{name}_accuracy"] = float(correct[mask].mean()) if mask.any() else None
    return out


def group_balanced_accuracy(aligned: np.ndarray):
    """A model-selection score for a biased validation set: the mean of the accuracies on its
    bias-aligned and bias-conflicting samples (so the majority cannot hide the minority)."""

    def score(y_true: np.ndarray, scores: np.ndarray) -> float:
        correct = scores.argmax(1) == y_true
        return float(np.mean([correct[aligned].mean(), correct[~aligned].mean()]))

    return score


def write_bias_set(out_dir: str | Path, splits: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]):
    """Write packed (images, target, bias) splits in the layout :func:`load_bias_splits` reads."""
    import pandas as pd

    from .io import atomic_path

    with atomic_path(out_dir, directory=True) as tmp:
        for name, (images, target, bias) in splits.items():
            np.save(tmp / f"{name}.npy", np.asarray(images))
            pd.DataFrame({"image": np.arange(len(target)), "target": target, "bias": bias,
                          "aligned": (target == bias).astype(int)}).to_csv(
                tmp / f"{name}_labels.csv", index=False)
