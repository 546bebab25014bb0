"""Latent-space de-biasing (Ramaswamy, Kim, Russakovsky, CVPR 2021): hyperplanes and complementary z'.

A linear SVM on GAN latents z separates each hallucinated attribute; its unit normal w and offset b give
a signed score w·z + b. An edit moves z to the nearest z' whose scores take prescribed values: keep the
target score and negate the protected one, so G(z) and G(z') share the target but not the protected
attribute. Every edit here is that minimum-norm problem, solved exactly and batched,
``z' = z + Aᵀ (A Aᵀ)⁻¹ (c − A z)``; the paper's closed form for one target and one protected hyperplane
is its fast path. The original looped over vectors in Python; here each edit is two matrix products per
chunk of rows, in float64, stored as float32 (float64 stays float64).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.svm import LinearSVC

from debiaslab.errors import DebiaslabError

VARIANTS = ("standard", "domain_dependent", "multi", "reflect", "project")
_CHUNK = 8192  # rows per float64 block: 8192 x 512 x 8 B = 32 MB


@dataclass(frozen=True, eq=False)
class Hyperplane:
    """Unit normal ``w`` and offset ``b`` of a latent SVM; ``accuracy`` is its held-out accuracy."""

    w: np.ndarray
    b: float
    accuracy: float = float("nan")
    n_fit: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        w = np.array(self.w, dtype=np.float64)  # a private read-only copy: frozen means frozen
        if w.ndim != 1 or not np.isclose(np.linalg.norm(w), 1.0, rtol=0, atol=1e-6):
            raise DebiaslabError(f"hyperplane {self.name!r}: w must be one unit-norm vector, got shape "
                                 f"{w.shape} and norm {np.linalg.norm(w):.6g}")
        w.flags.writeable = False
        object.__setattr__(self, "w", w)
        object.__setattr__(self, "b", float(self.b))

    def score(self, z) -> np.ndarray:
        """Signed score ``z @ w + b`` (n,), float64."""
        return _scores(_latents(z, self), self.w[None], np.array([self.b]))[:, 0]


def _label(h: Hyperplane, role: str) -> str:
    return f"{role} {h.name!r}" if h.name else role


def _latents(z, *planes: Hyperplane) -> np.ndarray:
    """z as an (n, d) array whose d matches every hyperplane's."""
    z = np.asarray(z)
    if z.ndim != 2:
        raise DebiaslabError(f"latents must be an (n, d) array, got shape {z.shape}")
    for h in planes:
        if len(h.w) != z.shape[1]:
            raise DebiaslabError(f"latents have {z.shape[1]} dims but hyperplane {h.name!r} has {len(h.w)}")
    return z


def _rows(z: np.ndarray):
    """(slice, float64 block) over z in chunks of rows: memory stays bounded at 160,000 x 512."""
    for start in range(0, len(z), _CHUNK):
        rows = slice(start, start + _CHUNK)
        yield rows, z[rows].astype(np.float64)


def _scores(z: np.ndarray, normals: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(n, k) float64 scores ``z @ normals.T + offsets`` without a float64 copy of all of z."""
    out = np.empty((len(z), len(normals)))
    for rows, block in _rows(z):
        out[rows] = block @ normals.T + offsets
    return out


def _update(z: np.ndarray, step: np.ndarray, residual: Callable) -> np.ndarray:
    """``z + residual(block, rows) @ step`` per chunk, computed in float64, stored as float32 / float64."""
    out = np.empty(z.shape, dtype=np.float64 if z.dtype == np.float64 else np.float32)
    for rows, block in _rows(z):
        out[rows] = block + residual(block, rows) @ step
    return out


# --------------------------------------------------------------------------- fitting
def fit_hyperplane(z, labels, *, name: str, C: float = 1.0, holdout: float = 0.2, seed: int = 0,
                   max_iter: int = 10_000) -> Hyperplane:
    """LinearSVC (squared hinge, as the original) on all of ``z``; (w, b) divided by ‖w‖.

    ``accuracy`` is that of a second SVM fitted on a seeded stratified ``1 - holdout`` part and
    scored on the rest, so a hyperplane that separates nothing shows up as ~0.5 instead of passing
    silently; the returned hyperplane then uses every latent, as the paper's (10,000). Deterministic.
    """
    z = _latents(z)
    y = np.asarray(labels).ravel()
    if len(y) != len(z) or not np.isin(y, (0, 1)).all():
        raise DebiaslabError(f"hallucinated labels of {name} must be {len(z)} values in {{0, 1}}, "
                             f"got {len(y)} values {np.unique(y)[:5]}")
    y = y.astype(np.int64)
    counts = np.bincount(y, minlength=2)
    if counts.min() == 0:
        raise DebiaslabError(f"hallucinated labels of {name} contain only class {int(counts.argmax())} "
                             f"(n={len(y)}); the latent SVM needs both")
    if not 0 < holdout < 1:
        raise DebiaslabError(f"holdout for {name} must be in (0, 1), got {holdout}")
    minority = int(counts.argmin())
    parts = None
    if counts.min() >= 2:
        parts = train_test_split(z, y, test_size=holdout, random_state=seed, stratify=y)
    if parts is None or min((parts[2] == minority).sum(), (parts[3] == minority).sum()) < 2:
        raise DebiaslabError(f"hallucinated labels of {name} have only {counts.min()} of class {minority} "
                             f"(n={len(y)}); the SVM needs at least 2 in both the fit and held-out parts")
    z_fit, z_out, y_fit, y_out = parts

    def svm():
        return LinearSVC(C=C, loss="squared_hinge", max_iter=max_iter, random_state=seed)

    accuracy = float(svm().fit(z_fit, y_fit).score(z_out, y_out))
    full = svm().fit(z, y)
    w, b = full.coef_.ravel().astype(np.float64), float(full.intercept_[0])
    norm = np.linalg.norm(w)
    if norm == 0:
        raise DebiaslabError(f"the latent SVM for {name} has a zero normal (C={C} too small?)")
    return Hyperplane(w / norm, b / norm, accuracy=accuracy, n_fit=len(y), name=name)


# --------------------------------------------------------------------------- edits
def check_not_parallel(t: Hyperplane, g: Hyperplane, *, max_cos: float,
                       names: tuple[str, str] = ("target", "protected")) -> float:
    """cos(w_t, w_g); refuse |cos| > max_cos, where the closed form divides by 1 − cos² ≈ 0."""
    cos = float(t.w @ g.w)
    if abs(cos) > max_cos:
        raise DebiaslabError(
            f"{_label(t, names[0])} and {_label(g, names[1])} hyperplanes are nearly parallel "
            f"(cos = {cos:.4f}, |cos| > max_cos = {max_cos}): keeping one score while flipping the other "
            f"divides by 1 - cos^2 = {1 - cos**2:.3g} and would throw z far off the latent prior")
    return cos


def complementary_latents(z, t: Hyperplane, g: Hyperplane, *, max_cos: float = 0.95) -> np.ndarray:
    """The paper's closed form: z' = z − 2·(w_g·z + b_g)/(1 − c²)·(w_g − c·w_t), c = w_g·w_t.

    Keeps ``w_t·z`` and negates ``w_g·z + b_g``; the same z' as ``min_norm_edit`` with those two
    constraints, as one rank-1 update (the fast path).
    """
    z = _latents(z, t, g)
    cos = check_not_parallel(t, g, max_cos=max_cos)
    direction = (g.w - cos * t.w) / (1 - cos**2)
    return _update(z, direction[None], lambda block, rows: -2 * (block @ g.w + g.b)[:, None])


def min_norm_edit(z, normals, targets, *, names: Sequence[str] | None = None,
                  max_cos: float = 0.95) -> np.ndarray:
    """Nearest z' to each z with ``normals @ z' = targets``: z' = z + Aᵀ (A Aᵀ)⁻¹ (c − A z), batched.

    ``normals`` is a shared (k, d) matrix A, ``targets`` (n, k) per-sample or (k,) shared. Refuses
    nearly dependent normals: smallest eigenvalue of the Gram matrix of the unit rows < 1 − max_cos
    (for two normals exactly |cos| > max_cos), where the solution would be huge or undefined.
    """
    z = _latents(z)
    normals = np.atleast_2d(np.asarray(normals, dtype=np.float64))
    k = len(normals)
    names = list(names) if names is not None else [f"normal {i}" for i in range(k)]
    if normals.ndim != 2 or normals.shape[1] != z.shape[1] or len(names) != k:
        raise DebiaslabError(f"normals must be (k, {z.shape[1]}) with k names, got shape {normals.shape} "
                             f"and {len(names)} names")
    targets = np.asarray(targets, dtype=np.float64)
    if targets.shape not in ((k,), (len(z), k)):
        raise DebiaslabError(f"targets must be ({len(z)}, {k}) or ({k},), got shape {targets.shape}")
    targets = np.broadcast_to(targets, (len(z), k))
    _check_independent(normals, names, max_cos)
    step = np.linalg.solve(normals @ normals.T, normals)  # (A Aᵀ)⁻¹ A, so z' = z + r @ step
    return _update(z, step, lambda block, rows: targets[rows] - block @ normals.T)


def _check_independent(normals: np.ndarray, names: list[str], max_cos: float) -> None:
    norms = np.linalg.norm(normals, axis=1, keepdims=True)
    if (norms == 0).any():
        raise DebiaslabError(f"hyperplane {names[int(np.argmin(norms))]} has a zero normal")
    gram = (normals / norms) @ (normals / norms).T
    smallest = float(np.linalg.eigvalsh(gram)[0])
    if smallest >= 1 - max_cos:
        return
    cos = np.abs(gram - np.eye(len(gram)))
    i, j = np.unravel_index(np.argmax(cos), cos.shape)
    raise DebiaslabError(
        f"hyperplanes {', '.join(names)} are nearly linearly dependent (smallest Gram eigenvalue "
        f"{smallest:.3g} < 1 - max_cos = {1 - max_cos:.3g}; most parallel: {names[i]} and {names[j]}, "
        f"cos = {gram[i, j]:.4f}): no stable edit satisfies all their constraints")


def _planes(*planes: tuple[Hyperplane, str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Normals (k, d), offsets (k,) and labels of (hyperplane, role) pairs."""
    return (np.stack([h.w for h, _ in planes]), np.array([h.b for h, _ in planes]),
            [_label(h, role) for h, role in planes])


def domain_dependent_latents(z, g_hat, t_by_group: tuple[Hyperplane, Hyperplane], g: Hyperplane, *,
                             max_cos: float = 0.95) -> np.ndarray:
    """Per protected group ĝ, the nearest z' with w_g·z'+b_g = −(w_g·z+b_g) and the other group's
    target score equal to the own group's: w_{t,1−ĝ}·z' + b_{t,1−ĝ} = w_{t,ĝ}·z + b_{t,ĝ}.

    Batched per group (one shared pair of normals each), no loop over vectors.
    """
    z = _latents(z, g, *t_by_group)
    g_hat = np.asarray(g_hat).ravel()
    if len(g_hat) != len(z) or not np.isin(g_hat, (0, 1)).all():
        raise DebiaslabError(f"hallucinated protected labels must be {len(z)} values in {{0, 1}}, "
                             f"got {len(g_hat)} values {np.unique(g_hat)[:5]}")
    out = np.empty(z.shape, dtype=np.float64 if z.dtype == np.float64 else np.float32)
    for group in (0, 1):
        rows = np.flatnonzero(g_hat == group)
        zg, own, other = z[rows], t_by_group[group], t_by_group[1 - group]
        normals, offsets, names = _planes((g, "protected"), (other, f"target|g={1 - group}"))
        scores = _scores(zg, np.stack([g.w, own.w]), np.array([g.b, own.b]))
        targets = np.column_stack([-scores[:, 0], scores[:, 1]]) - offsets
        out[rows] = min_norm_edit(zg, normals, targets, names=names, max_cos=max_cos)
    return out


def multi_protected_latents(z, t: Hyperplane, g1: Hyperplane, g2: Hyperplane, *,
                            max_cos: float = 0.95) -> dict[str, np.ndarray]:
    """Two protected attributes: "flip_g1", "flip_g2", "flip_both", each the nearest z' that keeps the
    target score, negates the flipped attributes' scores and keeps the other's."""
    z = _latents(z, t, g1, g2)
    normals, offsets, names = _planes((t, "target"), (g1, "protected 1"), (g2, "protected 2"))
    scores = _scores(z, normals, offsets)
    signs = {"flip_g1": (1, -1, 1), "flip_g2": (1, 1, -1), "flip_both": (1, -1, -1)}
    return {key: min_norm_edit(z, normals, scores * np.array(s) - offsets, names=names, max_cos=max_cos)
            for key, s in signs.items()}


def reflect_latents(z, g: Hyperplane) -> np.ndarray:
    """Ablation: plain reflection across the protected hyperplane, z − 2(w_g·z + b_g)·w_g.

    Negates the protected score but, unlike the paper's edit, moves the target score too.
    """
    z = _latents(z, g)
    return min_norm_edit(z, g.w[None], -g.score(z)[:, None] - g.b, names=[_label(g, "protected")])


def project_latents(z, g: Hyperplane) -> np.ndarray:
    """Ablation: projection onto the protected hyperplane, z − (w_g·z + b_g)·w_g (score 0)."""
    z = _latents(z, g)
    return min_norm_edit(z, g.w[None], np.array([-g.b]), names=[_label(g, "protected")])


def edit_latents(variant: str, z, *, t: Hyperplane, g: Hyperplane, g_hat=None,
                 t_by_group: tuple[Hyperplane, Hyperplane] | None = None, g2: Hyperplane | None = None,
                 max_cos: float = 0.95) -> dict[str, np.ndarray]:
    """The pipeline's entry point: {edit name: z'}; single-edit variants return {"flip": z'}."""
    if variant not in VARIANTS:
        raise DebiaslabError(f"unknown latent edit variant {variant!r}; valid: {', '.join(VARIANTS)}")
    needs = {"domain_dependent": {"g_hat": g_hat, "t_by_group": t_by_group}, "multi": {"g2": g2}}
    missing = [key for key, value in needs.get(variant, {}).items() if value is None]
    if missing:
        raise DebiaslabError(f"latent edit variant {variant!r} needs {', '.join(missing)}")
    if variant == "multi":
        return multi_protected_latents(z, t, g, g2, max_cos=max_cos)
    if variant == "domain_dependent":
        return {"flip": domain_dependent_latents(z, g_hat, t_by_group, g, max_cos=max_cos)}
    if variant == "standard":
        return {"flip": complementary_latents(z, t, g, max_cos=max_cos)}
    return {"flip": (reflect_latents if variant == "reflect" else project_latents)(z, g)}
