"""Stage train_fair METHOD TARGET: a target classifier trained by a fair-sampling method of
``methods.fair`` (FairBatch, Dr-Fairness, ...).

A method that declares it reads generated data (``"generated"`` among its ``context_keys``, as
Dr-Fairness does) trains on the real data plus the generated cells of fair_cells; others on the
real data only.
"""

import sys

import numpy as np
import pandas as pd

from debiaslab import distributed, stage_args
from debiaslab.data import ArrayDataset, PreparedSplit
from debiaslab.errors import DebiaslabError, stage_main
from debiaslab.io import save_figure, write_json
from debiaslab.methods import get_method
from debiaslab.methods.fair_sampler import plot_trajectory
from debiaslab.params import load_params, method_hparams
from debiaslab.train import train_and_save


def generated_cells(target: str):
    path = f"data/cells/{target}"
    try:
        images, cells = np.load(f"{path}/images.npy"), pd.read_csv(f"{path}/cells.csv")
    except FileNotFoundError:
        raise DebiaslabError(f"{path}: not found (run the fair_cells stage)") from None
    return {s: ArrayDataset(images[(cells["split"] == s).to_numpy()], cells.loc[cells["split"] == s, "y"],
                            cells.loc[cells["split"] == s, "g"]) for s in ("train", "val")}


@stage_main("train_fair")
def main(argv: list[str]) -> None:
    method, target = stage_args.arguments(argv, "METHOD TARGET")
    params = load_params("train", "attributes", "hparams", "methods")
    stage_args.choice("method", method, params["methods"].fair, "methods.fair")
    stage_args.target(target, params["attributes"].targets)
    distributed.relaunch_under_torchrun(params["train"].nproc_per_node)  # before any work, not just training
    protected = params["attributes"].protected[0]
    train, val = (PreparedSplit("data/prepared", s) for s in ("train", "val"))
    real = ArrayDataset(train.images, train.label(target), train.label(protected))
    real_val = ArrayDataset(val.images, val.label(target), val.label(protected))
    context, uses_generated = None, "generated" in get_method(method).context_keys
    if uses_generated:
        gen = generated_cells(target)
        data = ArrayDataset(*(np.concatenate([getattr(real, k), getattr(gen["train"], k)])
                              for k in ("images", "y", "g")))
        context = {"generated": np.arange(len(data)) >= len(real), "val_real": real_val,
                   "val_generated": gen["val"]}
    else:  # real data only
        data = real
    fitted, result = train_and_save(method, 1, data, real_val, params["train"],
                                    hparams=method_hparams(params["hparams"], method), context=context,
                                    model_path=f"models/{method}/{target}/model.pt",
                                    live_dir=f"metrics/train/{method}/{target}", attribute=target)
    save_figure(plot_trajectory(fitted.trajectory, f"{method}: {target}", protected=protected,
                                mu=uses_generated),
                f"reports/fair/{method}_{target}.png", dpi=110)
    lam, mu = fitted.trajectory[-1][1:]  # at the end of training (the saved weights: best epoch)
    write_json(f"metrics/fair/{method}/{target}.json", {
        "best_epoch": result.best_epoch, "best_val_AP": round(result.best_val_score, 6),
        "last_step_lambda_g1": {f"y{y}": round(float(lam[y, 1]), 4) for y in (0, 1)},
        "last_step_mu": {f"y{y}_g{g}": round(float(mu[y, g]), 4) for y in (0, 1) for g in (0, 1)}})
    print(f"train_fair {method}/{target}: val AP {result.best_val_score:.4f}, "
          f"final λ(g=1 | y) {lam[0, 1]:.3f} / {lam[1, 1]:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
