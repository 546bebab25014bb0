"""Stage bias_ensemble NAME DATA TRAIN_GROUP ENSEMBLE_GROUP: select bias-aligned training samples
of the packed bias set DATA by an ensemble vote; writes data/bias_ensemble/NAME/selected.npy."""

import sys

import numpy as np

from debiaslab import stage_args
from debiaslab.bias_ensemble import bias_ensemble_probs, bias_ensemble_report
from debiaslab.bias_experiment import load_bias_splits
from debiaslab.device import resolve_device
from debiaslab.errors import stage_main
from debiaslab.io import atomic_path, write_json
from debiaslab.params import BiasEnsembleParams, TrainParams, load_params


@stage_main("bias_ensemble")
def main(argv: list[str]) -> None:
    name, data_dir, train_group, ensemble_group = stage_args.arguments(
        argv, "NAME DATA TRAIN_GROUP ENSEMBLE_GROUP")
    stage_args.plain_name("name", name)
    stage_args.group("train group", train_group, TrainParams)
    stage_args.group("ensemble group", ensemble_group, BiasEnsembleParams)
    params = load_params(train_group, ensemble_group)
    be, train_params = params[ensemble_group], params[train_group]
    splits = load_bias_splits(data_dir)
    train, valid = splits["train"], splits["valid"]
    num_classes = int(train.data.y.max()) + 1
    probs = bias_ensemble_probs(train.data, valid.data, train_params, be, resolve_device(train_params.device),
                                num_classes)
    selected, report = bias_ensemble_report(probs, train.aligned, be)
    with atomic_path(f"data/bias_ensemble/{name}/selected.npy") as tmp:
        np.save(tmp, selected)
    write_json(f"metrics/bias_ensemble/{name}.json", report)
    print(f"bias_ensemble {name}: selected {report['n_selected']}/{report['n_train']}, "
          f"aligned precision {report['aligned_precision']:.4f}, "
          f"conflicting recall {report['conflicting_recall']:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
