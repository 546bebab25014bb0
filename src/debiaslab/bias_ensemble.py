"""BiasEnsemble (Lee et al., AAAI 2023): an ensemble of GCE models votes which training samples
are bias-aligned; LfF and DisEnt then train their biased model f_B on that selection only."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from tqdm import tqdm

from .data import ArrayDataset
from .device import seed_everything
from .methods.gce import GCE
from .train import fit, make_method, predict_scores


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
        method = make_method(GCE.name, num_classes, member_params, device, {"q": be.q},
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


def vote_bias_aligned(true_class_probs: np.ndarray, *, tau: float, min_votes: int) -> np.ndarray:
    """BiasEnsemble selection: each model votes "aligned" where p(true class) > τ; a sample is
    selected when at least ``min_votes`` models vote so. ``true_class_probs`` is (M, N)."""
    votes = (np.asarray(true_class_probs) > tau).sum(0)
    return votes >= min_votes


def selection_quality(selected: np.ndarray, aligned: np.ndarray) -> dict[str, float]:
    """How well the selection finds bias-aligned samples, where true bias labels are known:
    precision of the aligned selection and recall of the conflicting samples (left out)."""
    selected, aligned = np.asarray(selected, bool), np.asarray(aligned, bool)
    precision = float(aligned[selected].mean()) if selected.any() else float("nan")
    recall = float((~selected[~aligned]).mean()) if (~aligned).any() else float("nan")
    return {"aligned_precision": precision, "conflicting_recall": recall,
            "selected_fraction": float(selected.mean())}
