"""Evaluation of one classifier: thresholds from val, metrics on test (and on the balanced test
split, where there is one) with bootstrap intervals."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import metrics as M


def threshold_report(y_val: np.ndarray, s_val: np.ndarray) -> dict:
    return {"calibrated": float(M.calibrated_threshold(y_val, s_val)),
            "f1": float(M.f1_threshold(y_val, s_val))}


def group_metrics(y, s, pred, g, w, *, kl_bins: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every group metric, for each weighting row of ``w`` (row 0 is the unweighted set), and the
    four KL divergences that ``KL`` averages, (4, rows)."""
    rates = M.group_rates(y, pred, sensitive_features=g, sample_weight=w)
    cells = M.cell_accuracy(y, pred, sensitive_features=g, sample_weight=w)
    kl, kl_parts = M.kl_divergence(y, s, sensitive_features=g, bins=kl_bins, sample_weight=w,
                                   components=True)
    out = {
        "weighted_AP": M.weighted_average_precision(y, s, sensitive_features=g, sample_weight=w),
        "DEO": M.difference_in_equal_opportunity(y, pred, sensitive_features=g, sample_weight=w),
        "BA": M.bias_amplification(y, pred, sensitive_features=g, sample_weight=w),
        "KL": kl,
        "EO_diff": M.equalized_odds_difference(y, pred, sensitive_features=g, sample_weight=w),
        "DP_diff": M.demographic_parity_difference(y, pred, sensitive_features=g,
                                                   sample_weight=w),
        # Dr-Fairness's gaps: each group against the whole population (REFERENCE.md §4)
        "EO_gap": M.equalised_odds_gap(y, pred, g, sample_weight=w),
        "DP_gap": M.demographic_parity_gap(pred, g, sample_weight=w),
    }
    for k in ("0", "1"):
        out[f"TPR_g{k}"] = rates[k]["TPR"]
        out[f"FPR_g{k}"] = rates[k]["FPR"]
    for cell, acc in cells.items():
        out["acc_" + cell.replace("=", "").replace(",", "_")] = acc
    return out, np.stack(list(kl_parts.values()))


class Scored(NamedTuple):
    """One evaluated split: 0/1 target labels, the classifier's scores, protected labels by name."""

    y: np.ndarray
    s: np.ndarray
    groups: dict[str, np.ndarray]


def evaluate_classifier(y_val, s_val, y_test, s_test, protected_test: dict[str, np.ndarray], *,
                        n_boot: int, seed: int, kl_bins: int = 50,
                        balanced: Scored | None = None) -> dict:
    """Metrics JSON for one classifier: thresholds, val AP, test metrics with 95% intervals.

    Predictions use the calibrated threshold (chosen on val so that val has as many predicted
    as true positives). With ``balanced`` (SynthFaces' balanced test split), the same metrics on
    it under the same thresholds, as ``balanced`` and ``n_balanced``: its equal cells give the
    group gaps far narrower intervals than the skewed test split.
    """
    thresholds = threshold_report(y_val, s_val)
    out = {"threshold": thresholds, "val": {"AP": round(M.average_precision(y_val, s_val), 6)},
           "test": split_report(y_test, s_test, protected_test, thresholds, n_boot=n_boot,
                                seed=seed, kl_bins=kl_bins),
           "n_test": int(len(y_test)), "n_boot": n_boot}
    if balanced is not None:
        out["balanced"] = split_report(*balanced, thresholds, n_boot=n_boot, seed=seed,
                                       kl_bins=kl_bins)
        out["n_balanced"] = int(len(balanced.y))
    return out


def split_report(y, s, groups: dict[str, np.ndarray], thresholds: dict, *, n_boot: int, seed: int,
                 kl_bins: int) -> dict:
    """AP, accuracy and every group metric of one split, each with its 95% bootstrap interval.

    Row 0 of the weights is the full split; rows 1..n_boot are bootstrap resamples, all
    evaluated in one vectorised pass. ``KL_original`` is KL as Ramaswamy et al.'s code reports it:
    the median of the four divergences over all resamples (4 × n_boot values) ± 2σ of them, where
    ``KL`` is the mean of the four on the full split with the usual interval.
    """
    pred = (s > thresholds["calibrated"]).astype(np.int64)
    w = np.vstack([np.ones(len(y)), M.bootstrap_weights(len(y), n_boot=n_boot, seed=seed)])
    overall = {"AP": M.average_precision(y, s, sample_weight=w),
               "accuracy": M.accuracy(y, pred, sample_weight=w)}
    report = {name: M.summarize(v[0], v[1:]) for name, v in overall.items()}
    for attr, g in groups.items():
        values, kl_parts = group_metrics(y, s, pred, g, w, kl_bins=kl_bins)
        report[attr] = {name: M.summarize(v[0], v[1:]) for name, v in values.items()}
        report[attr]["KL_original"] = M.summarize_median_2sigma(kl_parts[:, 1:])
    return report


def plot_score_histograms(s_test, y_test, protected_test: dict[str, np.ndarray], title: str):
    """Score histograms per protected group, for true positives and true negatives."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(protected_test), 2, figsize=(9, 3.2 * len(protected_test)),
                             squeeze=False)
    bins = np.linspace(0, 1, 41)
    for row, (attr, g) in enumerate(protected_test.items()):
        for col, label in enumerate((1, 0)):
            ax = axes[row, col]
            for group, color in ((0, "tab:blue"), (1, "tab:orange")):
                sel = (y_test == label) & (g == group)
                ax.hist(s_test[sel], bins=bins, alpha=0.55, color=color, density=True,
                        label=f"{attr}={group} (n={sel.sum()})")
            ax.set_title(f"true {'positives' if label else 'negatives'}")
            ax.set_xlabel("score")
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
