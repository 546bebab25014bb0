"""Stage fair_cells TARGET: generated images for every (target label, protected group) cell.

Candidates are the generated data of ``gen_data.root``. By default (data/generated) the project's
own: all generated images, G(z) and the pairs G(z'), each in the cell its baseline labels put it
in (Dr-Fairness's group-conditional generated data). Or a folder of generated data a user brings
in Dr-Fairness's layout, one folder per attribute combination: each image in the cell its folder's
name gives by ``gen_data.tokens`` (debiaslab.gen_folders), decoded and resized to
``prepare.image_size`` like the real data. Up to fair_cells.per_cell images per cell for training
and fair_cells.val_per_cell more for the sampler's validation probes, in data/cells/TARGET:
images.npy (N, S, S, 3) uint8 and cells.csv (y, g, split; for a user's folder also image, the
file's path under the root), written whole or not at all. train_fair reads either the same way.
"""

import sys

import numpy as np
import pandas as pd

from debiaslab import stage_args
from debiaslab.errors import DebiaslabError, stage_main
from debiaslab.gan_debias import cell_counts, read_labels
from debiaslab.gen_folders import is_project_generated, pack_gen_images, read_gen_folders
from debiaslab.io import atomic_path, write_json
from debiaslab.params import PROJECT_GENERATED, load_params

GENERATED = PROJECT_GENERATED


def candidates(target: str, protected: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, t, g) of every generated image, labelled by the baseline classifiers."""
    labels = read_labels(f"{GENERATED}/labels.csv", [target, protected])
    pairs = read_labels(f"{GENERATED}/{target}/pairs.csv", [target, protected])
    images = np.concatenate([np.load(f"{GENERATED}/images.npy"), np.load(f"{GENERATED}/{target}/pairs.npy")])
    t = np.concatenate([labels[target], pairs[target]])
    g = np.concatenate([labels[protected], pairs[protected]])
    return images, t, g


def choose(t: np.ndarray, g: np.ndarray, p, rng: np.random.Generator,
           where: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows, split): per cell, in (0, 0), (0, 1), (1, 0), (1, 1) order, a shuffled draw of up to
    val_per_cell validation rows (at most half the cell), then up to per_cell training rows."""
    rows, split = [], []
    for y, k in ((0, 0), (0, 1), (1, 0), (1, 1)):
        members = rng.permutation(np.flatnonzero((t == y) & (g == k)))
        if len(members) < 2:
            raise DebiaslabError(where.format(n=len(members), y=y, k=k))
        n_val = min(p.val_per_cell, len(members) // 2)
        chosen = members[:n_val + p.per_cell]
        rows.append(chosen)
        split.append(np.where(np.arange(len(chosen)) < n_val, "val", "train"))
    return np.concatenate(rows), np.concatenate(split)


@stage_main("fair_cells")
def main(argv: list[str]) -> None:
    (target,) = stage_args.arguments(argv, "TARGET")
    params = load_params("fair_cells", "attributes", "gen_data", "prepare")
    stage_args.target(target, params["attributes"].targets)
    p, protected, gen = params["fair_cells"], params["attributes"].protected[0], params["gen_data"]
    rng = np.random.default_rng(p.seed)
    own = is_project_generated(gen.root)
    if own:
        images, t, g = candidates(target, protected)
        rows, split = choose(t, g, p, rng, f"fair_cells {target}: only {{n}} generated images in cell "
                             f"({target}={{y}}, {protected}={{k}}); sample more latents (latents.n)")
    else:  # a user's folder of generated data: every cell is checked to hold two images or more
        folders = read_gen_folders(gen.root, target, protected, gen.tokens)
        t, g = folders.y, folders.g
        rows, split = choose(t, g, p, rng, f"{gen.root}: only {{n}} images in cell ({target}={{y}}, "
                             f"{protected}={{k}})")
    with atomic_path(f"data/cells/{target}", directory=True) as tmp:  # whole or not at all
        table = pd.DataFrame({"y": t[rows], "g": g[rows], "split": split})
        if own:
            np.save(tmp / "images.npy", images[rows])
        else:
            pack_gen_images([folders.paths[i] for i in rows], tmp / "images.npy",
                            params["prepare"].image_size, workers=params["prepare"].workers)
            table["image"] = [folders.paths[i].relative_to(folders.root).as_posix() for i in rows]
        table.to_csv(tmp / "cells.csv", index=False)
    report = {s: cell_counts(t[rows][split == s], g[rows][split == s]) for s in ("train", "val")}
    source = ""
    if not own:
        report |= {"available": cell_counts(t, g),
                   "folders": {f"t{a}_g{b}": len(names) for (a, b), names in folders.folders.items()}}
        source = f" from {len(t)} images in {sum(report['folders'].values())} folders of {gen.root}"
    write_json(f"metrics/cells/{target}.json", report)
    print(f"fair_cells {target}: train cells {report['train']}{source}")


if __name__ == "__main__":
    main(sys.argv[1:])
