"""Stage train_debias METHOD NAME DATA TRAIN_GROUP SELECT: one model on the packed bias set DATA,
selected on its validation split (SELECT = accuracy, or balanced: the mean of aligned and
conflicting accuracy, for a biased validation set), then accuracy on the test split: overall,
bias-aligned and bias-conflicting. Writes metrics/debias/NAME/METHOD.json."""

import sys

import numpy as np

from debiaslab import stage_args
from debiaslab.bias_experiment import accuracy_by_alignment, group_balanced_accuracy, load_bias_splits
from debiaslab.errors import stage_main
from debiaslab.io import write_json
from debiaslab.params import TrainParams, load_params, method_hparams
from debiaslab.train import predict_scores, selection_score, train_and_save

# The methods that train on a bias set's class-index targets (without protected labels)
METHODS = ("erm", "gce", "lff", "lff_be", "disent", "disent_be")


@stage_main("train_debias")
def main(argv: list[str]) -> None:
    method_name, name, data_dir, train_group, select = stage_args.arguments(
        argv, "METHOD NAME DATA TRAIN_GROUP SELECT")
    stage_args.choice("method", method_name, METHODS)
    stage_args.plain_name("name", name)
    stage_args.group("train group", train_group, TrainParams)
    stage_args.choice("selection", select, ("accuracy", "balanced"))
    params = load_params(train_group, "hparams")
    splits = load_bias_splits(data_dir)
    train, valid = splits["train"], splits["valid"]
    scores = {"accuracy": selection_score, "balanced": group_balanced_accuracy(valid.aligned)}
    context = None
    if method_name.endswith("_be"):
        context = {"bias_selected": np.load(f"data/bias_ensemble/{name}/selected.npy")}
    method, result = train_and_save(
        method_name, int(train.data.y.max()) + 1, train.data, valid.data, params[train_group],
        hparams=method_hparams(params["hparams"], method_name), context=context,
        score_fn=scores[select], model_path=f"models/debias/{name}/{method_name}/model.pt",
        live_dir=f"metrics/train/debias/{name}/{method_name}", bias_set=name)
    report = {"best_epoch": result.best_epoch, f"valid_{select}": round(result.best_val_score, 6)}
    for split in ("train", "test"):
        pred = predict_scores(method, splits[split].data).argmax(1)
        report[split] = accuracy_by_alignment(pred, splits[split])
    write_json(f"metrics/debias/{name}/{method_name}.json", report)
    t = report["test"]
    print(f"train_debias {method_name} {name}: test {t['accuracy']:.4f}, aligned "
          f"{t['aligned_accuracy']:.4f}, conflicting {t['conflicting_accuracy']:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
