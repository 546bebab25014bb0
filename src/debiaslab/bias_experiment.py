"""Glue for the bias-conflicting benchmarks (Colored Digits, or a user's CMNIST / BFFHQ folders):
packed splits with target, bias and aligned columns; the BiasEnsemble; accuracy by alignment."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .data import ArrayDataset, PreparedSplit
from .debias_methods import selection_quality, vote_bias_aligned
from .device import seed_everything
from .train import fit, make_method, predict_scores

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


def bias_ensemble_probs(train: ArrayDataset, valid: ArrayDataset, params, be, device,
                        num_classes: int, *, progress: bool = True) -> np.ndarray:
    """(M, N) probability of the true class under each of M GCE models (BiasEnsemble).

    Each model is trained for ``be.epochs`` with its own seed and kept at its epoch of best
    validation accuracy, as the original ``pretrain_b_ensemble_best`` keeps its members.
    """
    member_params = replace(params, epochs=be.epochs)
    probs = []
    for m in tqdm(range(be.n_models), desc="bias ensemble", unit="model", disable=not progress):
        generator = seed_everything(be.seed * 1000 + m)
        method = make_method("gce", num_classes, member_params, device, {"q": be.q},
                             image_size=int(train.images.shape[1]))
        fit(method, train, valid, member_params, generator=generator, progress=False)
        scores = predict_scores(method, train)
        probs.append(scores[np.arange(len(train)), train.y])
    return np.stack(probs)


def bias_ensemble_report(probs: np.ndarray, aligned: np.ndarray, be) -> tuple[np.ndarray, dict]:
    selected = vote_bias_aligned(probs, tau=be.tau, min_votes=be.min_votes)
    report = {**selection_quality(selected, aligned), "n_selected": int(selected.sum()),
              "n_train": int(len(selected)), "true_conflicting_fraction": float((~aligned).mean())}
    return selected, report
