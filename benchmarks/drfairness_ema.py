"""Does Dr-Fairness's weight average (``ema_decay``) change its results? A paired comparison.

Usage (after `dvc repro`, from the repository root):
    PYTHONPATH=src python benchmarks/drfairness_ema.py [--seeds 1 2 3 4 5] [--decay 0.99]

Holds the data fixed (this checkout's ``data/prepared``, ``data/cells/Smiling`` and
``data/balanced_test``) and varies only Dr-Fairness's training seed: for each seed it trains
``train_fair@drfairness-Smiling``'s model twice, with ``ema_decay`` 0 and ``--decay``, all other
settings from params.yaml. Both runs of a seed draw the same batches and reach the same trained
weights (the sampler never sees the average); they differ in which weights are validated, selected
and evaluated. Prints per seed and the mean Δ (average − trained weights) with a 95 % t-interval
over seeds for test and balanced-split AP, accuracy and DEO, as ``evaluate`` computes them.
About 2.3 min per seed on 2 cores. Not a speed benchmark: it lives here beside the other
measurement scripts.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util

import numpy as np

from debiaslab import evaluate as E
from debiaslab.data import ArrayDataset, PreparedSplit
from debiaslab.device import resolve_device, seed_everything
from debiaslab.paired import t_interval
from debiaslab.params import load_params, method_hparams
from debiaslab.train import fit, make_method

TARGET = "Smiling"


def stage_module(name: str):
    """A stage script's functions (its work runs only under ``if __name__``)."""
    spec = importlib.util.spec_from_file_location(name, f"stages/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def training_data(protected: str):
    """Real training data plus the generated cells, and the context, as train_fair's stage builds them."""
    train, val = (PreparedSplit("data/prepared", s) for s in ("train", "val"))
    real = ArrayDataset(train.images, train.label(TARGET), train.label(protected))
    real_val = ArrayDataset(val.images, val.label(TARGET), val.label(protected))
    gen = stage_module("train_fair").generated_cells(TARGET)
    data = ArrayDataset(*(np.concatenate([getattr(real, k), getattr(gen["train"], k)])
                          for k in ("images", "y", "g")))
    context = {"generated": np.arange(len(data)) >= len(real), "val_real": real_val,
               "val_generated": gen["val"]}
    return data, real_val, context


def run(seed: int, decay: float, params, protected: str, data, real_val, context, splits, scored) -> dict:
    train_params = dataclasses.replace(params["train"], seed=seed)
    hparams = {**method_hparams(params["hparams"], "drfairness"), "ema_decay": decay}
    generator = seed_everything(seed)
    method = make_method("drfairness", 1, train_params, resolve_device(train_params.device), hparams,
                         context, image_size=int(data.images.shape[1]))
    fit(method, data, real_val, train_params, generator=generator, progress=False)
    val, test, balanced = (scored(method, split, TARGET, [protected]) for split in splits)
    report = E.evaluate_classifier(val.y, val.s, test.y, test.s, test.groups, n_boot=10, seed=0,
                                   balanced=balanced)
    out = {}
    for split in ("test", "balanced"):
        out[f"{split} AP"] = report[split]["AP"]["value"]
        out[f"{split} accuracy"] = report[split]["accuracy"]["value"]
        out[f"{split} DEO"] = report[split][protected]["DEO"]["value"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--decay", type=float, default=0.99)
    args = ap.parse_args()
    if len(args.seeds) < 2:
        ap.error("--seeds: give at least 2 seeds (an interval over seeds needs two)")
    params = load_params("train", "attributes", "hparams")
    protected = params["attributes"].protected[0]
    data, real_val, context = training_data(protected)
    splits = (PreparedSplit("data/prepared", "val"), PreparedSplit("data/prepared", "test"),
              PreparedSplit("data/balanced_test", "test"))
    scored = stage_module("evaluate").scored  # the evaluate stage's own scoring of a split
    rows = []
    for seed in args.seeds:
        trained, averaged = (run(seed, d, params, protected, data, real_val, context, splits, scored)
                             for d in (0.0, args.decay))
        rows.append((trained, averaged))
        print(f"seed {seed}: " + "; ".join(f"{k} {trained[k]:.3f} → {averaged[k]:.3f}" for k in trained),
              flush=True)
    print(f"\nΔ = average (ema_decay {args.decay}) − trained weights, mean [95 % t-interval] over "
          f"{len(rows)} seeds:")
    for key in rows[0][0]:
        deltas = [a[key] - t[key] for t, a in rows]
        ci = t_interval(deltas)
        means = [np.mean([run[i][key] for run in rows]) for i in (0, 1)]
        print(f"  {key:<18} {ci.mean:+.4f} [{ci.lo:+.4f}, {ci.hi:+.4f}]  "
              f"(trained {means[0]:.3f}, average {means[1]:.3f})")


if __name__ == "__main__":
    main()
