"""Stage bias_ensemble SEVERITY: select bias-aligned training samples by an ensemble vote."""

import sys

import numpy as np

from debiaslab.bias_experiment import bias_ensemble_probs, bias_ensemble_report, device_of, load_bias_splits
from debiaslab.errors import stage_main
from debiaslab.io import atomic_path, write_json
from debiaslab.params import load_params


@stage_main("bias_ensemble")
def main(severity: str) -> None:
    params = load_params("debias_train", "bias_ensemble")
    be = params["bias_ensemble"]
    splits = load_bias_splits(f"data/digits/{severity}")
    train, valid = splits["train"], splits["valid"]
    num_classes = int(train.data.y.max()) + 1
    probs = bias_ensemble_probs(train.data, valid.data, params["debias_train"], be,
                                device_of(params["debias_train"]), num_classes)
    selected, report = bias_ensemble_report(probs, train.aligned, be)
    with atomic_path(f"data/bias_ensemble/{severity}/selected.npy") as tmp:
        np.save(tmp, selected)
    write_json(f"metrics/bias_ensemble/{severity}.json", report)
    print(f"bias_ensemble {severity}: selected {report['n_selected']}/{report['n_train']}, "
          f"aligned precision {report['aligned_precision']:.4f}, "
          f"conflicting recall {report['conflicting_recall']:.4f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python stages/bias_ensemble.py SEVERITY")
    main(sys.argv[1])
