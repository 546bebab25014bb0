"""The data side of Ramaswamy et al.'s method: label generated images, pair them, judge the pairs.

Stage order (each a DVC stage): train_gan -> sample_latents -> hallucinate -> fit_hyperplanes ->
generate_pairs -> train_augmented -> evaluate. Intermediate files, all under ``data/generated/``:

- ``latents.npy`` (N, d) float32 z, ``images.npy`` (N, S, S, 3) uint8 G(z);
- ``labels.csv``: per attribute the baseline score, the hard label at its F1-optimal val threshold,
  and (SynthFaces) the oracle's label;
- ``<target>/hyperplanes.npz``; ``<target>/edited.npz``: {edit name: z' (M, d)} for latents
  n_fit..N (one edit, or three for two protected attributes); ``<target>/pairs.npy`` (E*M, S, S, 3)
  G(z') in edit order, and ``pairs.csv`` saying which edit and source latent each row is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import metrics as M
from .errors import DebiaslabError
from .io import atomic_path
from .latent_space import Hyperplane

# Which protected attributes (by position in attributes.protected) each edit flips. The ablations
# reflect and project are named "flip" too: they move across / onto the first protected hyperplane.
FLIPS = {"flip": {0}, "flip_g1": {0}, "flip_g2": {1}, "flip_both": {0, 1}}


def f1_hard_labels(y_val: np.ndarray, s_val: np.ndarray, s_gen: np.ndarray) -> tuple[np.ndarray, float]:
    """Hallucinated 0/1 labels: scores at or above the threshold that maximises F1 on real val data
    (``>=``, as :func:`metrics.f1_threshold` counts positives)."""
    threshold = float(M.f1_threshold(y_val, s_val))
    return hard_labels(s_gen, threshold), threshold


def hard_labels(scores: np.ndarray, threshold: float) -> np.ndarray:
    return (scores >= threshold).astype(np.int64)


def cell_counts(t: np.ndarray, g: np.ndarray) -> dict[str, int]:
    """(target, protected) counts, e.g. {"t1_g0": 812, ...}."""
    return {f"t{a}_g{b}": int(np.sum((t == a) & (g == b))) for a in (0, 1) for b in (0, 1)}


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return round(float(np.mean(a == b)), 4)


def pair_diagnostics(target: str, protected: list[str], edit: str, before: pd.DataFrame,
                     after: pd.DataFrame) -> dict[str, float]:
    """How often an edit did what it promised, by one judge's labels before (z) and after (z').

    ``edit`` names which protected attributes should flip: "flip" (the first), "flip_g1",
    "flip_g2" or "flip_both"; the others, and the target, should keep their labels.
    """
    should_flip = FLIPS[edit]
    out = {"target_kept": agreement(before[target].to_numpy(), after[target].to_numpy())}
    for k, attr in enumerate(protected):
        changed = float(np.mean(before[attr].to_numpy() != after[attr].to_numpy()))
        key = f"{attr}_flipped" if k in should_flip else f"{attr}_kept"
        out[key] = round(changed if k in should_flip else 1.0 - changed, 4)
    return out


def save_hyperplanes(path: str | Path, planes: dict[str, Hyperplane]) -> None:
    arrays = {}
    for name, h in planes.items():
        arrays[f"{name}.w"] = h.w
        arrays[f"{name}.meta"] = np.array([h.b, h.accuracy, h.n_fit])
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_hyperplanes(path: str | Path) -> dict[str, Hyperplane]:
    path = Path(path)
    if not path.is_file():
        raise DebiaslabError(f"{path}: not found (run the fit_hyperplanes stage)")
    with np.load(path, allow_pickle=False) as f:
        names = sorted({key.rsplit(".", 1)[0] for key in f.files})
        return {n: Hyperplane(f[f"{n}.w"], f[f"{n}.meta"][0], accuracy=float(f[f"{n}.meta"][1]),
                              n_fit=int(f[f"{n}.meta"][2]), name=n) for n in names}


def read_labels(path: str | Path, columns: list[str]) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DebiaslabError(f"{path}: not found (run the hallucinate stage)")
    table = pd.read_csv(path)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DebiaslabError(f"{path}: no column {missing[0]!r} (rerun hallucinate for the current "
                             "attributes.targets and attributes.protected)")
    return table


def label_column(table: pd.DataFrame, name: str, source: str) -> str:
    """The column of labels.csv that holds ``name``'s labels for ``latent_edit.labels = source``:
    the hallucinated ones, or the true ones (the renderer's exact labels, else the oracle's)."""
    if source == "hallucinated":
        return name
    for column in (f"true_{name}", f"oracle_{name}"):
        if column in table.columns:
            return column
    raise DebiaslabError(f"latent_edit.labels=ground_truth: data/generated/labels.csv has no true labels "
                         f"of "
                         f"{name} (gan.source=renderer gives the renderer's, the oracle stage the "
                         "oracle's; real data has neither: use latent_edit.labels=hallucinated)")


def labels_for(table: pd.DataFrame, names: list[str], source: str) -> pd.DataFrame:
    """The labels of ``names`` from labels.csv, under their own names, from ``source``."""
    return pd.DataFrame({name: table[label_column(table, name, source)].to_numpy() for name in names})


def fit_all(z: np.ndarray, labels: pd.DataFrame, target: str, protected: list[str], p) -> dict:
    """The hyperplanes ``latent_edit.variant`` needs ({"t", "g"}, plus "t_g0", "t_g1" or "g2"),
    fitted on latents ``z`` and their 0/1 ``labels`` (columns named by attribute), each checked
    to have both classes first."""
    from .latent_space import fit_hyperplane

    def fit(name, mask=None, column=None):
        y = labels[column or name].to_numpy()
        z_, y_ = (z, y) if mask is None else (z[mask], y[mask])
        check_both_classes(y_, name, f"fit_hyperplanes {target}")
        return fit_hyperplane(z_, y_, name=name, C=p.C, holdout=p.holdout, seed=p.seed)

    planes = {"t": fit(target), "g": fit(protected[0])}
    if p.variant == "domain_dependent":
        g_hat = labels[protected[0]].to_numpy()
        planes["t_g0"] = fit(f"{target}|{protected[0]}=0", g_hat == 0, target)
        planes["t_g1"] = fit(f"{target}|{protected[0]}=1", g_hat == 1, target)
    if p.variant == "multi":
        if len(protected) < 2:
            raise DebiaslabError("latent_edit.variant=multi needs two protected attributes "
                                 f"(attributes.protected is {protected})")
        planes["g2"] = fit(protected[1])
    return planes


def underrep_rows(target: np.ndarray, protected: np.ndarray, *, value: int, count: int) -> np.ndarray:
    """The ablation of the original's linear_underrep.py: which of the fit pool's latents the SVMs
    see when the target value ``value`` is under-represented. The first ``count`` latents of each
    protected group with that target value, and the first (len − 2·count) / 2 of each group with
    the other value (fewer where a cell has fewer), as sorted positions."""
    other = (len(target) - 2 * count) // 2
    cells = [np.flatnonzero((target == t) & (protected == g))[:count if t == value else other]
             for t in (0, 1) for g in (0, 1)]
    return np.sort(np.concatenate(cells))


def weighted_ap_selection(g_val: np.ndarray):
    """The model-selection score of the augmented classifiers: weighted validation AP (each
    protected group half of each class's weight), as the original main.py selects them."""
    def weighted_ap(y_val: np.ndarray, scores: np.ndarray) -> float:
        return float(M.weighted_average_precision(y_val, scores, sensitive_features=g_val))
    return weighted_ap


def check_both_classes(labels: np.ndarray, name: str, where: str) -> None:
    values, counts = np.unique(labels, return_counts=True)
    if len(values) < 2:
        raise DebiaslabError(f"{where}: the hallucinated labels of {name} are all {int(values[0])} "
                             f"on {int(counts[0])} generated images; the latent SVM needs both classes "
                             "(train the GAN longer or check the baseline classifier)")


def plot_pairs(originals: np.ndarray, edits: dict[str, np.ndarray], title: str, *, n: int = 12,
               first: str = "G(z)", prefix: str = "G(z') "):
    """Rows: G(z), then G(z') for each edit; the same n latents in every row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .gan import image_grid

    rows = [(first, originals[:n])] + [(prefix + k, v[:n]) for k, v in edits.items()]
    fig, axes = plt.subplots(len(rows), 1, figsize=(n * 0.9, 1.1 * len(rows) + 0.4), squeeze=False)
    for ax, (label, images) in zip(axes[:, 0], rows, strict=True):
        ax.imshow(image_grid(images, n), interpolation="nearest")
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_ap_vs_deo(points: dict[str, dict], protected: str, title: str):
    """One marker per method: test AP against DEO, with 95% bootstrap intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    def bar(m: dict) -> list[list[float]]:  # the full-set value can lie outside a bootstrap interval
        if m["lo"] is None or m["hi"] is None:
            return [[0.0], [0.0]]
        return [[max(m["value"] - m["lo"], 0.0)], [max(m["hi"] - m["value"], 0.0)]]

    for method, report in points.items():
        ap, deo = report["test"]["AP"], report["test"][protected]["DEO"]
        ax.errorbar(deo["value"], ap["value"], xerr=bar(deo), yerr=bar(ap), fmt="o", capsize=3,
                    label=method)
    ax.set_xlabel(f"DEO ({protected})  lower is fairer")
    ax.set_ylabel("AP")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
