"""Leakage of a protected attribute, and its amplification by a model (Wang et al., ICCV 2019).

Leakage is how well an attacker MLP predicts the protected attribute ``g`` from a vector: the
ground-truth label vector (dataset leakage λ_D), randomly perturbed labels (natural leakage λ_D(F1)),
or a model's output logits (model leakage λ_M). Amplification is Δ = λ_M − λ_D(F1 of the model):
positive means the model leaks more than its accuracy alone explains.

Procedure (see ``/work/shared/REFERENCE.md`` section 2): every split is subsampled to equal counts per
protected group, so chance accuracy is 0.5; the attacker is trained on train, its epoch is selected by
accuracy on val (never on test), and its test accuracy is folded around chance, ``0.5 + |acc − 0.5|``;
leakage is the mean ± std of that over rounds. Plain functions over arrays with keyword-only options,
as in :mod:`debiaslab.metrics`; ``g`` is binary 0/1 and ``split`` holds 0/1/2 for train/val/test.

Seeding: round ``r`` of ``leakage(..., seed=s)`` draws its subsamples from
``np.random.default_rng([s, r, 0])`` and seeds its attacker from ``SeedSequence([s, r, 1])``; label
perturbations use ``[s, 0, 2]``. Keys have a fixed length because NumPy's ``SeedSequence`` maps ``[s]``
and ``[s, 0]`` to the same state. Torch's global RNG is left untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .errors import DebiaslabError

SPLITS = ("train", "val", "test")

# purpose tags, the last entry of every seed key
_SUBSAMPLE, _ATTACKER, _PERTURB = 0, 1, 2


def _rng(seed: int, round_: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng([seed, round_, purpose])


def _torch_seed(seed: int, round_: int) -> int:
    return int(np.random.SeedSequence([seed, round_, _ATTACKER]).generate_state(1, np.uint64)[0] >> 1)


def _binary(name: str, a) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1:
        raise DebiaslabError(f"{name} must be a vector, got shape {a.shape}")
    if not np.isin(a, (0, 1)).all():
        raise DebiaslabError(f"{name} must be binary 0/1, got values {np.unique(a)[:5].tolist()}")
    return a.astype(np.int64)


def _features(name: str, x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise DebiaslabError(f"{name} must be an (n, d) matrix, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise DebiaslabError(f"{name} contains NaN or infinite values")
    return x


# --------------------------------------------------------------------------- attacker
class Attacker(nn.Module):
    """The reference attacker MLP (Wang et al. 2019), predicting a binary protected attribute.

    ``BN → Linear(d, h) → [BN → LeakyReLU → Linear(h, h)] × 2 → BN → LeakyReLU → Linear(h, 2)``
    with h = 300 as in the original. The leading BatchNorm stands in for input standardisation.
    """

    def __init__(self, d: int, hidden: int = 300):
        super().__init__()
        layers: list[nn.Module] = [nn.BatchNorm1d(d), nn.Linear(d, hidden)]
        for _ in range(2):
            layers += [nn.BatchNorm1d(hidden), nn.LeakyReLU(), nn.Linear(hidden, hidden)]
        layers += [nn.BatchNorm1d(hidden), nn.LeakyReLU(), nn.Linear(hidden, 2)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def balanced_indices(g, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a protected-balanced subsample of ``g``, so that chance accuracy is 0.5.

    Both groups keep ``min(n_0, n_1)`` rows, drawn without replacement (Wang et al. 2019 evaluate
    leakage on such subsamples).
    """
    g = _binary("g", g)
    members = [np.flatnonzero(g == k) for k in (0, 1)]
    m = min(len(idx) for idx in members)
    if m == 0:
        raise DebiaslabError(f"cannot balance: group g={0 if len(members[0]) == 0 else 1} has no rows")
    picked = [rng.choice(idx, size=m, replace=False) for idx in members]
    return np.sort(np.concatenate(picked))


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return (model(x).argmax(1) == y).double().mean().item()


def train_attacker(
    x_train,
    g_train,
    x_val,
    g_val,
    x_test,
    g_test,
    *,
    epochs: int = 100,
    lr: float = 5e-5,
    weight_decay: float = 1e-5,
    batch_size: int = 128,
    hidden: int = 300,
    seed: int = 0,
    num_threads: int | None = 1,
) -> float:
    """Train an :class:`Attacker` to predict ``g`` from ``x``; return its test accuracy (unfolded).

    Cross-entropy and Adam (defaults are the reference's: lr 5e-5, weight decay 1e-5, 100 epochs,
    batch 128). Accuracy on val is measured after every epoch and the weights of the best val epoch
    (the first one, on ties) are kept; model selection is on validation, never on test, and the test
    split is touched once, at the end. Inputs are used as given (no standardisation: the network
    starts with BatchNorm). Batches are slices of whole-split float32 tensors shuffled by a
    ``torch.Generator`` seeded with ``seed``, which also seeds the weights; a last batch of a single
    row (which BatchNorm cannot train on) is skipped for that epoch.

    ``num_threads`` is torch's intra-op thread count while training (restored afterwards; ``None``
    leaves it alone). One thread is the default: this network is too small to gain much from more,
    and OpenMP threads slow down many times over when another process holds a core.
    """
    if epochs < 1 or batch_size < 2:
        raise DebiaslabError(f"need epochs >= 1 and batch_size >= 2, got {epochs} and {batch_size}")
    data = {}
    for name, x, g in (("train", x_train, g_train), ("val", x_val, g_val), ("test", x_test, g_test)):
        x, g = _features(f"x_{name}", x), _binary(f"g_{name}", g)
        if len(x) != len(g) or len(x) < 2:
            raise DebiaslabError(
                f"{name}: need >= 2 rows and as many labels, got {len(x)} rows, {len(g)} labels"
            )
        data[name] = (torch.from_numpy(x), torch.from_numpy(g))
    d = data["train"][0].shape[1]
    if {t[0].shape[1] for t in data.values()} != {d}:
        raise DebiaslabError("x_train, x_val and x_test must have the same number of columns")

    threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        return _fit(
            data,
            epochs=epochs,
            lr=lr,
            weight_decay=weight_decay,
            batch_size=batch_size,
            hidden=hidden,
            seed=seed,
        )
    finally:
        torch.set_num_threads(threads)


def _fit(data: dict, *, epochs, lr, weight_decay, batch_size, hidden, seed) -> float:
    d = data["train"][0].shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Attacker(d, hidden)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, foreach=True)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = data["train"]
    n = len(xt)
    best_acc, best_state = -1.0, None
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        xs, ys = xt[perm], yt[perm]
        for start in range(0, n - 1, batch_size):  # n - 1: never a batch of one row
            xb, yb = xs[start : start + batch_size], ys[start : start + batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xb), yb).backward()
            opt.step()
        acc = _accuracy(model, *data["val"])
        if acc > best_acc:
            best_acc = acc
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return _accuracy(model, *data["test"])


def fold(acc):
    """Accuracy folded around chance, ``0.5 + |acc − 0.5|`` (Wang et al. 2019): 0.3 and 0.7 both leak."""
    folded = 0.5 + np.abs(np.asarray(acc, dtype=np.float64) - 0.5)
    return float(folded) if folded.ndim == 0 else folded


def leakage(x, g, split, *, rounds: int = 5, seed: int = 0, **attacker_kw) -> dict:
    """Leakage of ``g`` from ``x``: folded test accuracy of an attacker, mean ± std over rounds.

    ``x`` is (n, d): ground-truth labels give dataset leakage λ_D, a model's logits on the same
    images give model leakage λ_M (Wang et al. 2019). ``split`` marks rows 0/1/2 = train/val/test.
    Round ``r`` subsamples every split to equal group counts (rng ``[seed, r, 0]``), trains an attacker
    (:func:`train_attacker`, selected on val, seeded from ``[seed, r, 1]``) and folds its test accuracy.
    ``attacker_kw`` goes to :func:`train_attacker` (epochs, lr, ...). Returns
    ``{"mean", "std", "rounds"}``; std is the population std (ddof=0) of the per-round values.
    """
    if rounds < 1:
        raise DebiaslabError(f"rounds must be >= 1, got {rounds}")
    if "seed" in attacker_kw:
        raise DebiaslabError("pass seed to leakage() itself; each round derives its attacker's seed")
    x = _features("x", x)
    g = _binary("g", g)
    split = np.asarray(split)
    if split.shape != g.shape or len(x) != len(g):
        raise DebiaslabError(f"x, g and split disagree in length: {len(x)}, {len(g)}, {split.size}")
    if not np.isin(split, (0, 1, 2)).all():
        raise DebiaslabError("split must hold 0 (train), 1 (val) or 2 (test) for every row")
    rows = [np.flatnonzero(split == s) for s in range(3)]
    for name, idx in zip(SPLITS, rows, strict=True):
        counts = np.bincount(g[idx], minlength=2)
        if counts.min() == 0:
            raise DebiaslabError(
                f"{name} split has no rows with g={int(counts.argmin())} "
                f"(counts g=0: {counts[0]}, g=1: {counts[1]}); leakage needs both groups in every split"
            )
    values = []
    for r in range(rounds):
        rng = _rng(seed, r, _SUBSAMPLE)
        parts = []
        for idx in rows:
            sub = idx[balanced_indices(g[idx], rng)]
            parts += [x[sub], g[sub]]
        acc = train_attacker(*parts, seed=_torch_seed(seed, r), **attacker_kw)
        values.append(float(fold(acc)))
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "rounds": values}


# --------------------------------------------------------------------------- natural leakage
def perturb_labels(labels, p: float, rng: np.random.Generator) -> np.ndarray:
    """Flip every bit of a 0/1 label matrix independently with probability ``p`` (Wang et al. 2019).

    Flips are ``rng.random(shape) < p``: with the same rng state, the bits flipped at a smaller ``p``
    are a subset of those flipped at a larger one.
    """
    y = np.asarray(labels)
    if not np.isin(y, (0, 1)).all():
        raise DebiaslabError("labels must be a binary 0/1 matrix")
    if not 0.0 <= p <= 1.0:
        raise DebiaslabError(f"flip probability p must be in [0, 1], got {p}")
    flip = rng.random(y.shape) < p
    return np.where(flip, 1 - y, y).astype(y.dtype, copy=False)


def macro_f1(y_true, y_pred, *, zero_division: float = 0.0) -> float:
    """Macro-averaged F1 over label columns of 0/1 matrices (n, k): mean over k of 2TP/(2TP+FP+FN).

    A column with no true and no predicted positives scores ``zero_division`` (0, as sklearn's
    ``f1_score(average="macro")``). A vector is treated as one column.
    """
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.shape != p.shape:
        raise DebiaslabError(f"y_true and y_pred shapes differ: {t.shape} vs {p.shape}")
    if not (np.isin(t, (0, 1)).all() and np.isin(p, (0, 1)).all()):
        raise DebiaslabError("y_true and y_pred must be binary 0/1")
    t, p = t.reshape(len(t), -1).astype(bool), p.reshape(len(p), -1).astype(bool)
    tp = (t & p).sum(0)
    den = 2 * tp + (~t & p).sum(0) + (t & ~p).sum(0)
    f1 = np.where(den > 0, 2 * tp / np.maximum(den, 1), zero_division)
    return float(f1.mean())


def natural_leakage_curve(labels, g, split, *, p_grid, rounds: int = 5, seed: int = 0, **attacker_kw):
    """Natural leakage: leakage of randomly perturbed labels against their F1 (Wang et al. 2019).

    For each ``p`` in ``p_grid`` every label bit is flipped with probability ``p``
    (:func:`perturb_labels`, rng ``[seed, 0, 2]``, the same draw for every ``p``, so perturbations are
    nested and the curve is smooth), the macro-F1 of the perturbed against the true labels is measured
    on the test rows, and :func:`leakage` of ``g`` from the perturbed labels is measured with
    ``rounds``, ``seed`` and ``attacker_kw``. ``p = 0`` gives dataset leakage λ_D.
    Returns ``[{"p", "f1", "mean", "std"}, ...]`` in grid order.
    """
    y = np.asarray(labels)
    if y.ndim == 1:
        y = y[:, None]
    test = np.asarray(split) == 2
    curve = []
    for p in p_grid:
        noisy = perturb_labels(y, float(p), _rng(seed, 0, _PERTURB))
        leak = leakage(noisy, g, split, rounds=rounds, seed=seed, **attacker_kw)
        f1 = macro_f1(y[test], noisy[test])
        curve.append({"p": float(p), "f1": f1, "mean": leak["mean"], "std": leak["std"]})
    return curve


def leakage_at_f1(curve: Sequence[Mapping], f1: float) -> float:
    """λ_D(F1): the natural-leakage curve read at ``f1`` (Wang et al. 2019).

    Linear interpolation of the curve's leakage means against its F1 values (sorted by F1); outside
    the measured F1 range the nearest end value is returned.
    """
    if not curve:
        raise DebiaslabError("natural leakage curve is empty")
    xs = np.array([c["f1"] for c in curve], dtype=np.float64)
    ys = np.array([c["mean"] for c in curve], dtype=np.float64)
    order = np.argsort(xs, kind="stable")
    return float(np.interp(f1, xs[order], ys[order]))


def amplification(model_leakage, natural_at_f1: float) -> float:
    """Leakage amplification Δ = λ_M − λ_D(F1) (Wang et al. 2019); > 0: the model leaks more than
    its accuracy alone explains. ``model_leakage`` is a number or a :func:`leakage` result."""
    if isinstance(model_leakage, Mapping):
        model_leakage = model_leakage["mean"]
    return float(model_leakage) - float(natural_at_f1)


# --------------------------------------------------------------------------- pipeline helpers
def attack_data(prepared: str, protected_column: str | None, protected_attributes: list[str]):
    """The prepared train/val/test splits as the attacker sees them: (splits, label names, the
    protected column, label matrix y, protected g, split index 0/1/2), all splits concatenated."""
    from .data import PreparedSplit, multilabel_columns

    splits = [PreparedSplit(prepared, s) for s in SPLITS]
    for part in splits:  # each: the protected column holds both values in every split
        labels, protected = multilabel_columns(part, protected_column, protected_attributes)
    y = np.concatenate([s.label_matrix(labels) for s in splits])
    g = np.concatenate([s.label(protected) for s in splits])
    split = np.concatenate([np.full(len(s), k) for k, s in enumerate(splits)])
    return splits, labels, protected, y, g, split


def model_outputs(method, splits, labels) -> tuple[np.ndarray, dict[str, float], float]:
    """A multi-label model's logits on every prepared split (concatenated), its test macro-F1 at
    both kinds of thresholds (sigmoid 0.5, as Wang et al.'s code, and per-label calibrated on val)
    and its test mAP."""
    from . import metrics
    from .data import ArrayDataset
    from .train import predict_logits

    logits = [predict_logits(method, ArrayDataset(s.images, s.label_matrix(labels)))
              for s in splits]
    y_val, y_test = (s.label_matrix(labels) for s in splits[1:])
    calibrated = np.array([metrics.calibrated_threshold(y_val[:, k], logits[1][:, k])
                           for k in range(len(labels))])
    f1 = {"half": macro_f1(y_test, (logits[2] > 0).astype(int)),  # sigmoid(logit) > 0.5
          "calibrated": macro_f1(y_test, (logits[2] > calibrated).astype(int))}
    # over the labels with a positive test image (AP is undefined without one: a rare COCO
    # category may have none among the test images)
    m_ap = float(np.nanmean([metrics.average_precision(y_test[:, k], logits[2][:, k])
                             if y_test[:, k].any() else np.nan for k in range(len(labels))]))
    return np.concatenate(logits), f1, m_ap


def model_leakage(logits, g, split, curve, *, f1s: Mapping[str, float], m_ap: float,
                  f1_threshold: str, rounds: int, seed: int, **attacker_kw) -> dict:
    """One model's row of the leakage report: λ_M from its ``logits``, λ_D(F1) read off ``curve``
    at its F1 (``f1_threshold``: which of ``f1s``), and Δ."""
    f1 = f1s[f1_threshold]
    leak = leakage(logits, g, split, rounds=rounds, seed=seed, **attacker_kw)
    natural = leakage_at_f1(curve, f1)
    return {"mAP": round(m_ap, 6), "macro_F1": round(f1, 6),
            "macro_F1_at": {k: round(v, 6) for k, v in f1s.items()},
            "model_leakage": {"mean": leak["mean"], "std": leak["std"]},
            "natural_leakage_at_F1": natural, "amplification": amplification(leak, natural)}


def cap_rows(split, *, max_rows: int, seed: int) -> np.ndarray:
    """Sorted row indices keeping at most ``max_rows`` random rows of each split (0/1/2).

    The attacker's cost grows with its training rows; a few thousand balanced rows measure
    leakage as well as sixteen thousand (see the leakage tests' sanity values).
    """
    split = np.asarray(split)
    rng = np.random.default_rng([seed, 0, 3])
    keep = []
    for s in (0, 1, 2):
        idx = np.flatnonzero(split == s)
        keep.append(idx if len(idx) <= max_rows else rng.choice(idx, max_rows, replace=False))
    return np.sort(np.concatenate(keep))


def plot_natural_leakage(curve: Sequence[Mapping], models: Mapping[str, Mapping], title: str):
    """The natural-leakage curve (F1 against leakage, ±1 std) with each model's (F1, λ_M)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = sorted(curve, key=lambda c: c["f1"])
    f1 = [c["f1"] for c in pts]
    mean = np.array([c["mean"] for c in pts])
    std = np.array([c["std"] for c in pts])
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.plot(f1, mean, "o-", color="gray", label="natural leakage λ_D(F1) (perturbed labels)")
    ax.fill_between(f1, mean - std, mean + std, color="gray", alpha=0.2)
    for name, m in models.items():
        ax.errorbar(m["macro_F1"], m["model_leakage"]["mean"], yerr=m["model_leakage"]["std"],
                    fmt="s", ms=8, capsize=3, label=f"{name}: λ_M (Δ = {m['amplification']:+.3f})")
    ax.set_xlabel("macro-F1 of the labels the attacker sees")
    ax.set_ylabel("leakage (folded attacker accuracy)")
    ax.axhline(0.5, color="k", lw=0.5, ls=":")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_masked_images(images, masked: Mapping[str, np.ndarray], title: str):
    """Wang et al.'s picture of image-space removal (their ``vis.py``): the input images on top,
    below them what each masking model's classifier sees. All (n, H, W, 3) in [-1, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = {"input": images, **masked}
    n = len(images)
    fig, axes = plt.subplots(len(shown), n, figsize=(1.3 * n, 0.3 + 1.35 * len(shown)), squeeze=False)
    for row, (name, batch) in enumerate(shown.items()):
        for i in range(n):
            axes[row, i].imshow(np.clip((np.asarray(batch[i]) + 1) / 2, 0, 1))
            axes[row, i].set_xticks([]), axes[row, i].set_yticks([])
        axes[row, 0].set_ylabel(name, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_balanced_subsets(alphas: Sequence[str], rows: Mapping[str, Mapping], original: Mapping,
                          title: str):
    """λ_D and each model's λ_M (left) and Δ (right) against α, the original set at the right end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ticks = [*alphas, "original"]
    x = np.arange(len(ticks))
    results = [*(rows[a] for a in alphas), original]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.errorbar(x, [r["dataset_leakage"]["mean"] for r in results],
                  yerr=[r["dataset_leakage"]["std"] for r in results], fmt="o--", color="gray",
                  capsize=3, label="λ_D (the training labels)")
    for name in original["models"]:
        runs = [r["models"][name] for r in results]
        left.errorbar(x, [m["model_leakage"]["mean"] for m in runs],
                      yerr=[m["model_leakage"]["std"] for m in runs], fmt="s-", capsize=3,
                      label=f"λ_M {name}")
        right.plot(x, [m["amplification"] for m in runs], "s-", label=name)
    left.axhline(0.5, color="k", lw=0.5, ls=":")
    right.axhline(0, color="k", lw=0.5, ls=":")
    for ax, ylabel in ((left, "leakage (folded attacker accuracy)"), (right, "Δ = λ_M − λ_D(F1)")):
        ax.set_xticks(x, [f"α = {t}" if t != "original" else t for t in ticks])
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
