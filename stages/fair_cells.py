"""Stage fair_cells TARGET: generated images for every (target label, protected group) cell.

Candidates are all generated images, G(z) and the pairs G(z'), each in the cell its baseline labels
put it in (Dr-Fairness's group-conditional generated data). Up to fair_cells.per_cell images per
cell for training and fair_cells.val_per_cell more for the sampler's validation probes.
"""

import sys

import numpy as np
import pandas as pd

from debiaslab import stage_args
from debiaslab.errors import DebiaslabError, stage_main
from debiaslab.gan_debias import cell_counts, read_labels
from debiaslab.io import atomic_path, write_json
from debiaslab.params import load_params

GENERATED = "data/generated"


def candidates(target: str, protected: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, t, g) of every generated image, labelled by the baseline classifiers."""
    labels = read_labels(f"{GENERATED}/labels.csv", [target, protected])
    pairs = read_labels(f"{GENERATED}/{target}/pairs.csv", [target, protected])
    images = np.concatenate([np.load(f"{GENERATED}/images.npy"), np.load(f"{GENERATED}/{target}/pairs.npy")])
    t = np.concatenate([labels[target], pairs[target]])
    g = np.concatenate([labels[protected], pairs[protected]])
    return images, t, g


@stage_main("fair_cells")
def main(argv: list[str]) -> None:
    (target,) = stage_args.arguments(argv, "TARGET")
    params = load_params("fair_cells", "attributes")
    stage_args.target(target, params["attributes"].targets)
    p, protected = params["fair_cells"], params["attributes"].protected[0]
    images, t, g = candidates(target, protected)
    rng = np.random.default_rng(p.seed)
    rows, split = [], []
    for y, k in ((0, 0), (0, 1), (1, 0), (1, 1)):
        members = rng.permutation(np.flatnonzero((t == y) & (g == k)))
        if len(members) < 2:
            raise DebiaslabError(f"fair_cells {target}: only {len(members)} generated images in cell "
                                 f"({target}={y}, {protected}={k}); sample more latents (latents.n)")
        n_val = min(p.val_per_cell, len(members) // 2)
        chosen = members[:n_val + p.per_cell]
        rows.append(chosen)
        split.append(np.where(np.arange(len(chosen)) < n_val, "val", "train"))
    rows, split = np.concatenate(rows), np.concatenate(split)
    with atomic_path(f"data/cells/{target}/images.npy") as tmp:
        np.save(tmp, images[rows])
    with atomic_path(f"data/cells/{target}/cells.csv") as tmp:
        pd.DataFrame({"y": t[rows], "g": g[rows], "split": split}).to_csv(tmp, index=False)
    report = {s: cell_counts(t[rows][split == s], g[rows][split == s]) for s in ("train", "val")}
    write_json(f"metrics/cells/{target}.json", report)
    print(f"fair_cells {target}: train cells {report['train']}")


if __name__ == "__main__":
    main(sys.argv[1:])
