"""Stage leakage: dataset, natural and model leakage of the protected column.

λ_D from ground-truth label vectors, the natural-leakage curve from randomly perturbed labels,
λ_M from each multi-label model's logits on the same images, and Δ = λ_M − λ_D(F1 of the model)
(Wang et al., ICCV 2019). Images are the prepared train/val/test splits (attacker train, model
selection, test), capped at `leakage.max_rows` rows each. The protected column is
`multilabel.protected`, or the first of `attributes.protected` when that is null.
"""

import dataclasses

import numpy as np

from debiaslab import leakage as L
from debiaslab import metrics
from debiaslab.data import ArrayDataset, PreparedSplit, multilabel_columns
from debiaslab.device import resolve_device, seed_everything
from debiaslab.errors import stage_main
from debiaslab.io import save_figure, write_json
from debiaslab.params import load_params
from debiaslab.train import load_checkpoint, predict_logits

PREPARED = "data/prepared"
SPLITS = ("train", "val", "test")


def model_outputs(method, splits, labels):
    """Logits on every split, test macro-F1 at both kinds of thresholds (sigmoid 0.5, as Wang et
    al.'s code, and per-label calibrated on val) and test mAP."""
    logits = [predict_logits(method, ArrayDataset(s.images, s.label_matrix(labels)))
              for s in splits]
    y_val, y_test = (s.label_matrix(labels) for s in splits[1:])
    calibrated = np.array([metrics.calibrated_threshold(y_val[:, k], logits[1][:, k])
                           for k in range(len(labels))])
    f1 = {"half": L.macro_f1(y_test, (logits[2] > 0).astype(int)),  # sigmoid(logit) > 0.5
          "calibrated": L.macro_f1(y_test, (logits[2] > calibrated).astype(int))}
    # over the labels with a positive test image (AP is undefined without one: a rare COCO
    # category may have none among the test images)
    m_ap = float(np.nanmean([metrics.average_precision(y_test[:, k], logits[2][:, k])
                             if y_test[:, k].any() else np.nan for k in range(len(labels))]))
    return np.concatenate(logits), f1, m_ap


@stage_main("leakage")
def main() -> None:
    params = load_params("leakage", "attributes", "multilabel", "methods")
    p = params["leakage"]
    seed_everything(p.seed)
    attacker = {k: getattr(p, k) for k in ("epochs", "batch_size", "lr", "weight_decay")}
    splits = [PreparedSplit(PREPARED, s) for s in SPLITS]
    for split in splits:  # each: the protected column holds both values in every split
        labels, protected = multilabel_columns(split, params["multilabel"].protected,
                                               params["attributes"].protected)
    y = np.concatenate([s.label_matrix(labels) for s in splits])
    g = np.concatenate([s.label(protected) for s in splits])
    split = np.concatenate([np.full(len(s), k) for k, s in enumerate(splits)])
    rows = L.cap_rows(split, max_rows=p.max_rows, seed=p.seed)

    curve = L.natural_leakage_curve(y[rows], g[rows], split[rows], p_grid=p.p_grid,
                                    rounds=p.rounds, seed=p.seed, **attacker)
    at_zero = [c for c in curve if c["p"] == 0.0]
    dataset = (at_zero[0] if at_zero else
               L.leakage(y[rows], g[rows], split[rows], rounds=p.rounds, seed=p.seed, **attacker))
    models = {}
    for name in params["methods"].multilabel:
        method, meta = load_checkpoint(f"models/multilabel/{name}/model.pt", resolve_device("auto"))
        logits, f1s, m_ap = model_outputs(method, splits, meta["labels"])
        f1 = f1s[p.f1_threshold]
        leak = L.leakage(logits[rows], g[rows], split[rows], rounds=p.rounds, seed=p.seed, **attacker)
        natural = L.leakage_at_f1(curve, f1)
        models[name] = {"mAP": round(m_ap, 6), "macro_F1": round(f1, 6),
                        "macro_F1_at": {k: round(v, 6) for k, v in f1s.items()},
                        "model_leakage": {"mean": leak["mean"], "std": leak["std"]},
                        "natural_leakage_at_F1": natural,
                        "amplification": L.amplification(leak, natural)}
        print(f"leakage {name}: F1 {f1:.3f} ({p.f1_threshold} thresholds), "
              f"λ_M {leak['mean']:.3f} ± {leak['std']:.3f}, λ_D(F1) {natural:.3f}, "
              f"Δ {models[name]['amplification']:+.3f}")
    report = {"protected": protected, "labels": labels, "attacker": dataclasses.asdict(p),
              "dataset_leakage": {"mean": dataset["mean"], "std": dataset["std"]},
              "natural_curve": curve, "models": models}
    write_json("metrics/leakage.json", report)
    save_figure(L.plot_natural_leakage(curve, models, f"leakage of {protected}"),
                "reports/leakage/natural_leakage.png", dpi=110)
    print(f"leakage: λ_D = {dataset['mean']:.3f} ± {dataset['std']:.3f} over {p.rounds} rounds")


if __name__ == "__main__":
    main()
