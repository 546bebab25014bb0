"""Stage train_debias METHOD NAME DATA TRAIN_GROUP SELECT [bias_ensemble]: one model on the packed
bias set DATA, selected on its validation split (SELECT = accuracy, or balanced: the mean of aligned
and conflicting accuracy, for a biased validation set), then accuracy on the test split: overall,
bias-aligned and bias-conflicting. Writes metrics/debias/NAME/RUN.json, RUN = METHOD, or with
``bias_ensemble`` METHOD_be: the method then gets BiasEnsemble's selection of bias-aligned samples
(data/bias_ensemble/NAME/selected.npy), which it must declare it uses (LfF and DisEnt do)."""

import sys

import numpy as np

from debiaslab import stage_args
from debiaslab.bias_experiment import accuracy_by_alignment, group_balanced_accuracy, load_bias_splits
from debiaslab.errors import DebiaslabError, stage_main
from debiaslab.io import write_json
from debiaslab.methods import get_method
from debiaslab.params import METHOD_HPARAMS, TrainParams, bias_ensemble_run, load_params, method_hparams
from debiaslab.train import predict_scores, selection_score, train_and_save


@stage_main("train_debias")
def main(argv: list[str]) -> None:
    args = stage_args.arguments(argv, "METHOD NAME DATA TRAIN_GROUP SELECT [bias_ensemble]",
                                optional=1)
    method_name, name, data_dir, train_group, select, *selection = args
    stage_args.choice("method", method_name, tuple(METHOD_HPARAMS))
    stage_args.choice("last argument", selection[0] if selection else "bias_ensemble", ("bias_ensemble",))
    stage_args.plain_name("name", name)
    stage_args.group("train group", train_group, TrainParams)
    stage_args.choice("selection", select, ("accuracy", "balanced"))
    run = bias_ensemble_run(method_name) if selection else method_name
    if selection and "bias_selected" not in get_method(method_name).context_keys:
        raise DebiaslabError(f"{method_name} does not use BiasEnsemble's selection "
                             "(methods.bias_ensemble lists the methods that do, e.g. lff, disent)")
    params = load_params(train_group, "hparams")
    splits = load_bias_splits(data_dir)
    train, valid = splits["train"], splits["valid"]
    scores = {"accuracy": selection_score, "balanced": group_balanced_accuracy(valid.aligned)}
    context = None
    if selection:
        context = {"bias_selected": np.load(f"data/bias_ensemble/{name}/selected.npy")}
    method, result = train_and_save(
        method_name, int(train.data.y.max()) + 1, train.data, valid.data, params[train_group],
        hparams=method_hparams(params["hparams"], method_name), context=context,
        score_fn=scores[select], model_path=f"models/debias/{name}/{run}/model.pt",
        live_dir=f"metrics/train/debias/{name}/{run}", bias_set=name)
    report = {"best_epoch": result.best_epoch, f"valid_{select}": round(result.best_val_score, 6)}
    for split in ("train", "test"):
        pred = predict_scores(method, splits[split].data).argmax(1)
        report[split] = accuracy_by_alignment(pred, splits[split])
    write_json(f"metrics/debias/{name}/{run}.json", report)
    t = report["test"]
    print(f"train_debias {run} {name}: test {t['accuracy']:.4f}, aligned "
          f"{t['aligned_accuracy']:.4f}, conflicting {t['conflicting_accuracy']:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
