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


def train_attacker(x_train, g_train, x_val, g_val, x_test, g_test, *, seed: int = 0,
                   **options) -> float:
    """Train an :class:`Attacker` to predict ``g`` from ``x``; return its test accuracy (unfolded).

    One task of :func:`train_attackers`, which documents the training and ``options``.
    """
    return train_attackers([(x_train, g_train, x_val, g_val, x_test, g_test)], seeds=[seed],
                           **options)[0]


def train_attackers(tasks: Sequence[Sequence], *, seeds: Sequence[int], epochs: int = 100,
                    lr: float = 5e-5, weight_decay: float = 1e-5, batch_size: int = 128,
                    hidden: int = 300, num_threads: int | None = None) -> list[float]:
    """Train one :class:`Attacker` per task, ``(x_train, g_train, x_val, g_val, x_test, g_test)``,
    seeded by ``seeds``; return each one's test accuracy (unfolded), in task order.

    Cross-entropy and Adam (defaults are the reference's: lr 5e-5, weight decay 1e-5, 100 epochs,
    batch 128). Accuracy on val is measured after every epoch and the weights of the best val epoch
    (the first one, on ties) are kept; model selection is on validation, never on test, and the test
    split is touched once, at the end. Inputs are used as given (no standardisation: the network
    starts with BatchNorm). Batches are slices of whole-split float32 tensors shuffled by a
    ``torch.Generator`` seeded with the task's seed, which also seeds its weights; a last batch of
    a single row (which BatchNorm cannot train on) is skipped for that epoch.

    Tasks whose splits have the same shapes train together as one :class:`AttackerStack` (the
    natural-leakage curve's and the models' attackers all do): each network still sees only its
    own data, loss and Adam state, so a task's result does not depend on its company beyond
    floating-point rounding, and a dozen small networks cost little more than one.

    ``num_threads`` is torch's intra-op thread count while training (restored afterwards; ``None``,
    the default, leaves it alone, as every training stage does). One network alone was trained on
    one thread, since it gained little from two; a stack of them gains (``benchmarks/
    leakage_attackers.py``: 12 attackers at the leakage stage's sizes on 2 cores, 90 s one at a
    time on one thread, 79 s stacked on one thread, 45 s stacked on two).
    """
    if epochs < 1 or batch_size < 2:
        raise DebiaslabError(f"need epochs >= 1 and batch_size >= 2, got {epochs} and {batch_size}")
    if len(seeds) != len(tasks):
        raise DebiaslabError(f"{len(tasks)} attacker tasks but {len(seeds)} seeds")
    checked = [_task_tensors(task) for task in tasks]
    groups: dict[tuple, list[int]] = {}
    for i, data in enumerate(checked):
        groups.setdefault(tuple(tuple(x.shape) for x, _ in data.values()), []).append(i)
    threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    accuracies = [0.0] * len(tasks)
    try:
        for members in groups.values():
            found = _fit_stack([checked[i] for i in members], [seeds[i] for i in members],
                               epochs=epochs, lr=lr, weight_decay=weight_decay,
                               batch_size=batch_size, hidden=hidden)
            for i, acc in zip(members, found, strict=True):
                accuracies[i] = acc
    finally:
        torch.set_num_threads(threads)
    return accuracies


def _task_tensors(task: Sequence) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    if len(task) != 6:
        raise DebiaslabError("an attacker task is (x_train, g_train, x_val, g_val, x_test, g_test)")
    data = {}
    for k, name in enumerate(SPLITS):
        x, g = _features(f"x_{name}", task[2 * k]), _binary(f"g_{name}", task[2 * k + 1])
        if len(x) != len(g) or len(x) < 2:
            raise DebiaslabError(
                f"{name}: need >= 2 rows and as many labels, got {len(x)} rows, {len(g)} labels"
            )
        data[name] = (torch.from_numpy(x), torch.from_numpy(g))
    if len({x.shape[1] for x, _ in data.values()}) != 1:
        raise DebiaslabError("x_train, x_val and x_test must have the same number of columns")
    return data


class AttackerStack(nn.Module):
    """Several :class:`Attacker` networks of one shape, run at once on (m, batch, d) inputs.

    Every parameter and buffer of the m networks is stacked along a new leading axis; Linear
    layers become batched matrix products and each BatchNorm one BatchNorm over m·d channels, so
    the networks stay independent (each normalises over its own batch) while m of them cost a
    few large kernels per step instead of m times Python's and the kernels' overhead.
    """

    def __init__(self, attackers: Sequence[Attacker]):
        super().__init__()
        self.plan = [(type(layer), f"net_{i}") for i, layer in enumerate(attackers[0].net)]
        for key in attackers[0].state_dict():
            if key.endswith("num_batches_tracked"):
                continue  # BatchNorm's momentum is fixed: the count is never read
            stacked = torch.stack([a.state_dict()[key] for a in attackers])
            name = key.replace(".", "_")
            if key.endswith(("running_mean", "running_var")):
                self.register_buffer(name, stacked.clone())
            else:
                self.register_parameter(name, nn.Parameter(stacked.clone()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, b, d = x.shape
        for kind, name in self.plan:
            if kind is nn.Linear:
                weight, bias = getattr(self, f"{name}_weight"), getattr(self, f"{name}_bias")
                x = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
            elif kind is nn.BatchNorm1d:
                d = x.shape[2]
                flat = nn.functional.batch_norm(
                    x.transpose(0, 1).reshape(b, m * d),
                    getattr(self, f"{name}_running_mean").view(-1),  # updated in place
                    getattr(self, f"{name}_running_var").view(-1),
                    getattr(self, f"{name}_weight").view(-1), getattr(self, f"{name}_bias").view(-1),
                    self.training, 0.1, 1e-5)
                x = flat.reshape(b, m, d).transpose(0, 1)
            else:
                x = nn.functional.leaky_relu(x)
        return x


@torch.no_grad()
def _accuracies(model: AttackerStack, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.eval()
    return (model(x).argmax(2) == y).double().mean(1)


def _fit_stack(datas: list[dict], seeds: list[int], *, epochs, lr, weight_decay, batch_size,
               hidden) -> list[float]:
    attackers = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            attackers.append(Attacker(datas[0]["train"][0].shape[1], hidden))
    model = AttackerStack(attackers)
    gens = [torch.Generator().manual_seed(seed) for seed in seeds]
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, foreach=True)
    split = {name: tuple(torch.stack(part) for part in zip(*(d[name] for d in datas), strict=True))
             for name in SPLITS}  # (m, n, d) features and (m, n) labels per split
    xt, yt = split["train"]
    m, n = yt.shape
    models = torch.arange(m)[:, None]
    best_acc, best_state = torch.full((m,), -1.0, dtype=torch.float64), None
    for _ in range(epochs):
        model.train()
        perm = torch.stack([torch.randperm(n, generator=gen) for gen in gens])
        xs, ys = xt[models, perm], yt[models, perm]
        for start in range(0, n - 1, batch_size):  # n - 1: never a batch of one row
            logits = model(xs[:, start:start + batch_size])
            loss = nn.functional.cross_entropy(logits.transpose(1, 2), ys[:, start:start + batch_size],
                                               reduction="none").mean(1).sum()  # each its own mean
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        acc = _accuracies(model, *split["val"])
        better = acc > best_acc
        best_acc = torch.where(better, acc, best_acc)
        state = model.state_dict()
        if best_state is None:
            best_state = {k: v.detach().clone() for k, v in state.items()}
        for k, v in state.items():
            best_state[k][better] = v.detach()[better]
    model.load_state_dict(best_state)
    return _accuracies(model, *split["test"]).tolist()


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
    ``attacker_kw`` goes to :func:`train_attackers` (epochs, lr, ...). Returns
    ``{"mean", "std", "rounds"}``; std is the population std (ddof=0) of the per-round values.
    """
    return leakages([x], g, split, rounds=rounds, seed=seed, **attacker_kw)[0]


def leakages(xs: Sequence, g, split, *, rounds: int = 5, seed: int = 0, **attacker_kw) -> list[dict]:
    """:func:`leakage` of ``g`` from each of ``xs`` (arrays over the same rows), every attacker of
    every round trained at once (:func:`train_attackers`): each result is what ``leakage`` alone
    gives, the same subsamples and seeds, up to floating-point rounding."""
    if rounds < 1:
        raise DebiaslabError(f"rounds must be >= 1, got {rounds}")
    if "seed" in attacker_kw or "seeds" in attacker_kw:
        raise DebiaslabError("pass seed to leakage() itself; each round derives its attacker's seed")
    xs = [_features("x", x) for x in xs]
    g = _binary("g", g)
    split = np.asarray(split)
    if split.shape != g.shape or any(len(x) != len(g) for x in xs):
        raise DebiaslabError(f"x, g and split disagree in length: {', '.join(str(len(x)) for x in xs)}, "
                             f"{len(g)}, {split.size}")
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
    tasks, seeds = [], []
    for r in range(rounds):
        rng = _rng(seed, r, _SUBSAMPLE)
        picked = [idx[balanced_indices(g[idx], rng)] for idx in rows]
        for x in xs:
            tasks.append([part for sub in picked for part in (x[sub], g[sub])])
            seeds.append(_torch_seed(seed, r))
    folded = np.array(fold(train_attackers(tasks, seeds=seeds, **attacker_kw))).reshape(rounds, len(xs))
    return [{"mean": float(np.mean(values)), "std": float(np.std(values)), "rounds": values.tolist()}
            for values in folded.T]


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
    noisy = [perturb_labels(y, float(p), _rng(seed, 0, _PERTURB)) for p in p_grid]
    leaks = leakages(noisy, g, split, rounds=rounds, seed=seed, **attacker_kw)
    return [{"p": float(p), "f1": macro_f1(y[test], labels[test]), "mean": leak["mean"],
             "std": leak["std"]} for p, labels, leak in zip(p_grid, noisy, leaks, strict=True)]


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


def model_leakage(leak: Mapping, curve, *, f1s: Mapping[str, float], m_ap: float,
                  f1_threshold: str) -> dict:
    """One model's row of the leakage report: λ_M (``leak``, the :func:`leakage` of g from its
    logits), λ_D(F1) read off ``curve`` at its F1 (``f1_threshold``: which of ``f1s``), and Δ."""
    f1 = f1s[f1_threshold]
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
