"""Fairness metrics: plain functions over arrays, in the style of fairlearn.

Every metric takes ``y_true`` and ``y_score`` or ``y_pred`` (and ``sensitive_features`` where it
is about groups) with keyword-only options. ``sample_weight`` may be one vector (n,) or a matrix
(B, n) of B weightings: a bootstrap passes resample counts as weights and gets B values in one
vectorised call, with no loop over resamples. Groups are binary (0/1) as in the papers.
Definitions follow Ramaswamy et al. (CVPR 2021) and Wang & Russakovsky (ICML 2021).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d


def _weights(sample_weight, n: int) -> tuple[np.ndarray, bool]:
    """(B, n) float weights and whether the caller passed a single vector."""
    if sample_weight is None:
        return np.ones((1, n)), True
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape[-1] != n:
        raise ValueError(f"sample_weight has {w.shape[-1]} columns for {n} samples")
    return (w[None], True) if w.ndim == 1 else (w, False)


def _out(values: np.ndarray, single: bool):
    return float(values[0]) if single else values


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _binary(name: str, a) -> np.ndarray:
    a = np.asarray(a).astype(np.int64).ravel()
    if not np.isin(a, (0, 1)).all():
        raise ValueError(f"{name} must be binary 0/1")
    return a


# --------------------------------------------------------------------------- ranking metrics
def average_precision(y_true, y_score, *, sample_weight=None):
    """Average precision, Σ (R_k − R_{k−1}) P_k over distinct score thresholds (as sklearn)."""
    y = _binary("y_true", y_true).astype(np.float64)
    s = np.asarray(y_score, dtype=np.float64).ravel()
    w, single = _weights(sample_weight, len(y))
    order = np.argsort(-s, kind="stable")
    s, y, w = s[order], y[order], w[:, order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # end of each run of tied scores
    tp = np.cumsum(w * y, axis=1)[:, last]
    fp = np.cumsum(w * (1 - y), axis=1)[:, last]
    precision = np.nan_to_num(_ratio(tp, tp + fp))
    recall = _ratio(tp, tp[:, -1:])
    gain = np.diff(np.concatenate([np.zeros((len(w), 1)), recall], axis=1), axis=1)
    return _out((gain * precision).sum(1), single)


def weighted_average_precision(y_true, y_score, *, sensitive_features, sample_weight=None):
    """AP with sample weight N_y / (2 N_{y,g}): each protected group gets half of each class."""
    y = _binary("y_true", y_true)
    g = _binary("sensitive_features", sensitive_features)
    w, single = _weights(sample_weight, len(y))
    cell = 2 * y + g
    onehot = np.eye(4)[cell]  # (n, 4)
    n_cell = w @ onehot  # (B, 4) weighted counts per (y, g)
    n_y = n_cell[:, [0, 0, 2, 2]] + n_cell[:, [1, 1, 3, 3]]
    factor = _ratio(n_y, 2 * n_cell)  # (B, 4)
    weighted = w * np.nan_to_num(factor)[:, cell]
    return _out(average_precision(y, y_score, sample_weight=weighted), single)


# --------------------------------------------------------------------------- thresholds
def calibrated_threshold(y_true, y_score) -> float:
    """Threshold predicting exactly as many positives as there are true positives (on val).

    Returns the midpoint between the k-th and (k+1)-th highest score, so ``score > threshold``
    selects the top k; the same threshold is then applied to test (Ramaswamy et al.).
    """
    y = _binary("y_true", y_true)
    s = np.sort(np.asarray(y_score, dtype=np.float64).ravel())[::-1]
    k = int(y.sum())
    if k == 0:
        return float(s[0])
    if k == len(s):
        return float(-np.inf)
    return float((s[k - 1] + s[k]) / 2)


def f1_threshold(y_true, y_score) -> float:
    """Threshold maximising F1 (``score >= threshold`` is positive); used to hallucinate labels."""
    from sklearn.metrics import precision_recall_curve  # here: sklearn.metrics takes 1.5 s to import

    precision, recall, thresholds = precision_recall_curve(_binary("y_true", y_true), y_score)
    f1 = _ratio(2 * precision * recall, precision + recall)[:-1]
    return float(thresholds[np.nanargmax(f1)])


# --------------------------------------------------------------------------- group rates
def _group_rate(event, condition, g, w, group: int) -> np.ndarray:
    """Weighted P(event | condition, g = group) for each weighting (row of w)."""
    mask = condition * (g == group)
    return _ratio(w @ (event * mask), w @ mask)


def group_rates(y_true, y_pred, *, sensitive_features, sample_weight=None) -> dict:
    """TPR, FPR and selection rate per group: {"0": {...}, "1": {...}}."""
    y, p = _binary("y_true", y_true), _binary("y_pred", y_pred)
    g = _binary("sensitive_features", sensitive_features)
    w, single = _weights(sample_weight, len(y))
    ones = np.ones_like(y)
    return {str(k): {"TPR": _out(_group_rate(p, y, g, w, k), single),
                     "FPR": _out(_group_rate(p, 1 - y, g, w, k), single),
                     "selection_rate": _out(_group_rate(p, ones, g, w, k), single)}
            for k in (0, 1)}


def difference_in_equal_opportunity(y_true, y_pred, *, sensitive_features, sample_weight=None):
    """DEO = |TPR(g=0) − TPR(g=1)| (= |FNR(g=0) − FNR(g=1)|)."""
    r = group_rates(y_true, y_pred, sensitive_features=sensitive_features,
                    sample_weight=sample_weight)
    return np.abs(np.subtract(r["0"]["TPR"], r["1"]["TPR"]))


def equalized_odds_difference(y_true, y_pred, *, sensitive_features, sample_weight=None):
    """max(|ΔTPR|, |ΔFPR|) between the two groups (fairlearn's definition)."""
    r = group_rates(y_true, y_pred, sensitive_features=sensitive_features,
                    sample_weight=sample_weight)
    return np.maximum(np.abs(np.subtract(r["0"]["TPR"], r["1"]["TPR"])),
                      np.abs(np.subtract(r["0"]["FPR"], r["1"]["FPR"])))


def demographic_parity_difference(y_true, y_pred, *, sensitive_features, sample_weight=None):
    """|P(ŷ=1 | g=0) − P(ŷ=1 | g=1)| (fairlearn's definition)."""
    r = group_rates(y_true, y_pred, sensitive_features=sensitive_features,
                    sample_weight=sample_weight)
    return np.abs(np.subtract(r["0"]["selection_rate"], r["1"]["selection_rate"]))


def cell_accuracy(y_true, y_pred, *, sensitive_features, sample_weight=None) -> dict:
    """Accuracy in each (target, protected) cell: {"y=0,g=1": ...}."""
    y, p = _binary("y_true", y_true), _binary("y_pred", y_pred)
    g = _binary("sensitive_features", sensitive_features)
    w, single = _weights(sample_weight, len(y))
    correct = (y == p).astype(np.float64)
    return {f"y={t},g={k}": _out(_group_rate(correct, (y == t).astype(np.float64), g, w, k), single)
            for t in (0, 1) for k in (0, 1)}


def accuracy(y_true, y_pred, *, sample_weight=None):
    y, p = _binary("y_true", y_true), _binary("y_pred", y_pred)
    w, single = _weights(sample_weight, len(y))
    return _out(_ratio(w @ (y == p).astype(np.float64), w.sum(1)), single)


def bias_amplification(y_true, y_pred, *, sensitive_features, sample_weight=None):
    """Directional bias amplification, attribute → task, on the 2×2 table (Wang & Russakovsky).

    Δ_ta = P(T̂=t | A=a) − P(T=t | A=a), y_ta = sign(P(T=t | A=a) − P(T=t));
    BA = mean over t, a ∈ {0, 1} of y_ta · Δ_ta. Positive: the model exaggerates the correlation.
    """
    y, p = _binary("y_true", y_true), _binary("y_pred", y_pred)
    g = _binary("sensitive_features", sensitive_features)
    w, single = _weights(sample_weight, len(y))
    ones = np.ones(len(y))
    terms = []
    for t in (0, 1):
        p_t = _ratio(w @ (y == t).astype(np.float64), w.sum(1))
        for a in (0, 1):
            true_rate = _group_rate((y == t).astype(np.float64), ones, g, w, a)
            pred_rate = _group_rate((p == t).astype(np.float64), ones, g, w, a)
            terms.append(np.sign(true_rate - p_t) * (pred_rate - true_rate))
    return _out(np.mean(terms, axis=0), single)


def kl_divergence(y_true, y_score, *, sensitive_features, bins: int = 50, sigma: float = 1.0,
                  sample_weight=None, components: bool = False):
    """Mean of four KL divergences between the groups' score distributions.

    For true positives and true negatives separately: histograms of group 0 and group 1 over one
    shared bin range (the original code gave each group its own range, so bins did not align),
    float counts (the original truncated them to integers), Gaussian smoothing of σ = 1 bin,
    +1e-6, normalised; KL in both directions. With ``components=True`` also returns the four
    values as {"y=1,KL(0||1)": ...}.
    """
    y = _binary("y_true", y_true)
    g = _binary("sensitive_features", sensitive_features)
    s = np.asarray(y_score, dtype=np.float64).ravel()
    w, single = _weights(sample_weight, len(y))
    parts = {}
    for label in (1, 0):
        sel = y == label
        if not sel.any():
            raise ValueError(f"kl_divergence: no samples with y_true == {label}")
        lo, hi = s[sel].min(), s[sel].max()
        edges = np.linspace(lo, hi if hi > lo else lo + 1e-9, bins + 1)
        onehot = np.eye(bins)[np.clip(np.searchsorted(edges, s, "right") - 1, 0, bins - 1)]
        hist = []
        for group in (0, 1):
            counts = w @ (onehot * (sel & (g == group))[:, None])  # (B, bins), float
            counts = gaussian_filter1d(counts, sigma, axis=1) + 1e-6
            hist.append(counts / counts.sum(1, keepdims=True))
        p0, p1 = hist
        parts[f"y={label},KL(0||1)"] = (p0 * np.log(p0 / p1)).sum(1)
        parts[f"y={label},KL(1||0)"] = (p1 * np.log(p1 / p0)).sum(1)
    mean = _out(np.mean(list(parts.values()), axis=0), single)
    if components:
        return mean, {k: _out(v, single) for k, v in parts.items()}
    return mean


# --------------------------------------------------------------------------- gaps to the overall rate
def _max_gap_to_overall(p: np.ndarray, condition: np.ndarray, g: np.ndarray, sample_weight):
    """max over the groups present of |P(p | condition, g) − P(p | condition)|, per weighting row;
    NaN where no sample meets the condition."""
    w, single = _weights(sample_weight, len(p))
    overall = _ratio(w @ (p * condition), w @ condition)
    gaps = [np.abs(_ratio(w @ (p * condition * (g == k)), w @ (condition * (g == k))) - overall)
            for k in np.unique(g[condition.astype(bool)])]
    if not gaps:
        return _out(np.full(len(w), np.nan), single)
    with np.errstate(invalid="ignore"):
        return _out(np.max(gaps, axis=0), single)


def _gap_inputs(y_pred, sensitive_features, y_true=None):
    p = _binary("y_pred", y_pred)
    g = np.asarray(sensitive_features).ravel()
    y = None if y_true is None else _binary("y_true", y_true)
    if len(g) != len(p) or (y is not None and len(y) != len(p)):
        raise ValueError("y_true, y_pred and sensitive_features must have the same length")
    return p, g, y


def demographic_parity_gap(y_pred, sensitive_features, *, sample_weight=None):
    """max over groups of |P(ŷ=1 | g) − P(ŷ=1)| (Dr-Fairness's DP gap; groups may be any labels).

    Unlike :func:`demographic_parity_difference` (group vs group) this compares each group with the
    whole population, so with two groups it is that difference times the other group's share.
    """
    p, g, _ = _gap_inputs(y_pred, sensitive_features)
    return _max_gap_to_overall(p, np.ones_like(p), g, sample_weight)


def equal_opportunity_gap(y_true, y_pred, sensitive_features, *, label: int = 1, sample_weight=None):
    """max over groups of |P(ŷ=1 | y=label, g) − P(ŷ=1 | y=label)|; NaN when no sample has that label.

    ``label=1`` compares true positive rates, ``label=0`` false positive rates.
    """
    p, g, y = _gap_inputs(y_pred, sensitive_features, y_true)
    return _max_gap_to_overall(p, (y == label).astype(np.int64), g, sample_weight)


def equalised_odds_gap(y_true, y_pred, sensitive_features, *, sample_weight=None):
    """The larger of :func:`equal_opportunity_gap` for y = 0 and y = 1 (NaN if either is)."""
    gaps = [equal_opportunity_gap(y_true, y_pred, sensitive_features, label=t, sample_weight=sample_weight)
            for t in (0, 1)]
    return np.maximum(*gaps)


# --------------------------------------------------------------------------- bootstrap
def bootstrap_weights(n: int, *, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) resample counts: row b says how often each sample appears in resample b."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_boot, n)) + n * np.arange(n_boot)[:, None]
    return np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def summarize(value: float, resampled: np.ndarray) -> dict:
    """Point value on the full set, bootstrap median and 95% percentile interval."""
    r = np.asarray(resampled, dtype=np.float64)
    r = r[np.isfinite(r)]
    if not len(r):
        return {"value": _round(value), "median": None, "lo": None, "hi": None}
    lo, med, hi = np.percentile(r, [2.5, 50, 97.5])
    return {"value": _round(value), "median": _round(med), "lo": _round(lo), "hi": _round(hi)}


def summarize_median_2sigma(resampled) -> dict:
    """Ramaswamy et al.'s summary of a bootstrap: the median of every resampled value, ± 2 standard
    deviations of them (their KL pools the four divergences of all resamples, 4 × B values)."""
    r = np.asarray(resampled, dtype=np.float64).ravel()
    r = r[np.isfinite(r)]
    if not len(r):
        return {"median": None, "two_sigma": None}
    return {"median": _round(np.median(r)), "two_sigma": _round(2 * np.std(r))}


def _round(x) -> float | None:
    x = float(x)
    return round(x, 6) if np.isfinite(x) else None
