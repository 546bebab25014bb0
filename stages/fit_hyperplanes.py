"""Stage fit_hyperplanes TARGET: latent SVMs for the target and protected attributes, then z'.

SVMs are fitted on the first latent_edit.n_fit latents and their labels (latent_edit.labels: the
hallucinated ones, or the true ones as a diagnostic); every later latent gets its complementary z'
(latent_edit.variant), vectorised. With latent_edit.underrep_value set, the SVMs see only
underrep_count latents of each protected group with that target value (the original's ablation
linear_underrep.py).
"""

import sys
import time

import numpy as np

from debiaslab import stage_args
from debiaslab.errors import DebiaslabError, stage_main
from debiaslab.gan_debias import fit_all, labels_for, read_labels, save_hyperplanes, underrep_rows
from debiaslab.io import atomic_path, write_json
from debiaslab.latent_space import check_not_parallel, edit_latents
from debiaslab.params import load_params

GENERATED = "data/generated"


@stage_main("fit_hyperplanes")
def main(argv: list[str]) -> None:
    (target,) = stage_args.arguments(argv, "TARGET")
    params = load_params("latent_edit", "attributes")
    stage_args.target(target, params["attributes"].targets)
    p, protected = params["latent_edit"], params["attributes"].protected
    z = np.load(f"{GENERATED}/latents.npy")
    labels = labels_for(read_labels(f"{GENERATED}/labels.csv", [target, *protected]),
                        [target, *protected], p.labels)
    if len(labels) != len(z):
        raise DebiaslabError(f"{GENERATED}/labels.csv has {len(labels)} rows for {len(z)} latents "
                             "(rerun hallucinate)")
    if not p.n_fit < len(z):
        raise DebiaslabError(f"latent_edit.n_fit ({p.n_fit}) must be below latents.n ({len(z)}): "
                             "the latents after n_fit are the ones edited")
    start = time.perf_counter()
    fit_rows = np.arange(p.n_fit)
    if p.underrep_value is not None:
        pool = labels.iloc[:p.n_fit]
        fit_rows = underrep_rows(pool[target].to_numpy(), pool[protected[0]].to_numpy(),
                                 value=p.underrep_value, count=p.underrep_count)
    planes = fit_all(z[fit_rows], labels.iloc[fit_rows], target, protected, p)
    cos = float(planes["t"].w @ planes["g"].w)
    if p.variant not in ("reflect", "project"):  # the ablations do not keep the target score
        check_not_parallel(planes["t"], planes["g"], max_cos=p.max_cos, names=(target, protected[0]))
    g_hat = labels[protected[0]].to_numpy()[p.n_fit:]
    t_by_group = (planes["t_g0"], planes["t_g1"]) if "t_g0" in planes else None
    edits = edit_latents(p.variant, z[p.n_fit:], t=planes["t"], g=planes["g"], g_hat=g_hat,
                         t_by_group=t_by_group, g2=planes.get("g2"), max_cos=p.max_cos)
    seconds = time.perf_counter() - start
    save_hyperplanes(f"{GENERATED}/{target}/hyperplanes.npz", planes)
    with atomic_path(f"{GENERATED}/{target}/edited.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, **edits)
    write_json(f"metrics/latent/{target}.json", {
        "variant": p.variant, "labels": p.labels, "n_fit": p.n_fit, "n_edited": len(z) - p.n_fit,
        **({"underrep": underrep_counts(labels.iloc[fit_rows], target, protected[0], p)}
           if p.underrep_value is not None else {}),
        "svm_heldout_accuracy": {h.name: round(h.accuracy, 4) for h in planes.values()},
        "cos_wt_wg": round(cos, 4),
        "mean_edit_distance": {k: round(float(np.linalg.norm(v - z[p.n_fit:], axis=1).mean()), 4)
                               for k, v in edits.items()}})
    print(f"fit_hyperplanes {target}: SVM accuracy {planes['t'].accuracy:.3f} ({target}), "
          f"{planes['g'].accuracy:.3f} ({protected[0]}), cos(w_t, w_g) {cos:+.3f}, {seconds:.1f} s")


def underrep_counts(fitted, target: str, protected: str, p) -> dict:
    """How many latents of each (target, protected) cell the SVMs saw in the ablation."""
    cells = fitted.groupby([target, protected]).size()
    return {"value": p.underrep_value, "count": p.underrep_count,
            "cells": {f"{target}={t},{protected}={g}": int(n) for (t, g), n in cells.items()}}


if __name__ == "__main__":
    main(sys.argv[1:])
