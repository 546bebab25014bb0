"""Stage fit_hyperplanes TARGET: latent SVMs for the target and protected attributes, then z'.

SVMs are fitted on the first latent_edit.n_fit latents (their hallucinated labels); every later
latent gets its complementary z' (latent_edit.variant), vectorised.
"""

import sys
import time

import numpy as np

from debiaslab import stage_args
from debiaslab.errors import DebiaslabError, stage_main
from debiaslab.gan_debias import check_both_classes, read_labels, save_hyperplanes
from debiaslab.io import atomic_path, write_json
from debiaslab.latent_space import check_not_parallel, edit_latents, fit_hyperplane
from debiaslab.params import load_params

GENERATED = "data/generated"


def fit_all(z, labels, target: str, protected: list[str], p) -> dict:
    """The hyperplanes a variant needs, each checked to have both classes first."""
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


@stage_main("fit_hyperplanes")
def main(argv: list[str]) -> None:
    (target,) = stage_args.arguments(argv, "TARGET")
    params = load_params("latent_edit", "attributes")
    stage_args.target(target, params["attributes"].targets)
    p, protected = params["latent_edit"], params["attributes"].protected
    z = np.load(f"{GENERATED}/latents.npy")
    labels = read_labels(f"{GENERATED}/labels.csv", [target, *protected])
    if len(labels) != len(z):
        raise DebiaslabError(f"{GENERATED}/labels.csv has {len(labels)} rows for {len(z)} latents "
                             "(rerun hallucinate)")
    if not p.n_fit < len(z):
        raise DebiaslabError(f"latent_edit.n_fit ({p.n_fit}) must be below latents.n ({len(z)}): "
                             "the latents after n_fit are the ones edited")
    start = time.perf_counter()
    planes = fit_all(z[:p.n_fit], labels.iloc[:p.n_fit], target, protected, p)
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
        "variant": p.variant, "n_fit": p.n_fit, "n_edited": len(z) - p.n_fit,
        "svm_heldout_accuracy": {h.name: round(h.accuracy, 4) for h in planes.values()},
        "cos_wt_wg": round(cos, 4),
        "mean_edit_distance": {k: round(float(np.linalg.norm(v - z[p.n_fit:], axis=1).mean()), 4)
                               for k, v in edits.items()}})
    print(f"fit_hyperplanes {target}: SVM accuracy {planes['t'].accuracy:.3f} ({target}), "
          f"{planes['g'].accuracy:.3f} ({protected[0]}), cos(w_t, w_g) {cos:+.3f}, {seconds:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
