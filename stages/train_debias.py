"""Stage train_debias METHOD SEVERITY: one Colored Digits model, selected on the unbiased
validation set, then its accuracy on the unbiased test set: overall, aligned and conflicting."""

import sys

import numpy as np

from debiaslab.bias_experiment import accuracy_by_alignment, load_bias_splits
from debiaslab.errors import stage_main
from debiaslab.io import write_json
from debiaslab.params import load_params, method_hparams
from debiaslab.train import predict_scores, train_and_save


@stage_main("train_debias")
def main(method_name: str, severity: str) -> None:
    params = load_params("debias_train", "hparams")
    splits = load_bias_splits(f"data/digits/{severity}")
    context = None
    if method_name.endswith("_be"):
        context = {"bias_selected": np.load(f"data/bias_ensemble/{severity}/selected.npy")}
    train, valid = splits["train"], splits["valid"]
    num_classes = int(train.data.y.max()) + 1
    method, result = train_and_save(
        method_name, num_classes, train.data, valid.data, params["debias_train"],
        hparams=method_hparams(params["hparams"], method_name), context=context,
        model_path=f"models/debias/{severity}/{method_name}/model.pt",
        live_dir=f"metrics/train/debias/{severity}/{method_name}", severity=float(severity))
    report = {"best_epoch": result.best_epoch, "valid_accuracy": round(result.best_val_score, 6)}
    for name in ("train", "test"):
        pred = predict_scores(method, splits[name].data).argmax(1)
        report[name] = accuracy_by_alignment(pred, splits[name])
    write_json(f"metrics/debias/{severity}/{method_name}.json", report)
    t = report["test"]
    print(f"train_debias {method_name} {severity}%: test {t['accuracy']:.4f}, aligned "
          f"{t['aligned_accuracy']:.4f}, conflicting {t['conflicting_accuracy']:.4f}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python stages/train_debias.py METHOD SEVERITY")
    main(*sys.argv[1:])
