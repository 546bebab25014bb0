"""Stage train_multilabel METHOD: one classifier over every non-protected attribute (Wang et al.).

Its logits are what the model-leakage attacker sees. METHOD is erm or adversarial (adversarial
removal of the protected column, hyperparameters in `hparams.adversarial`). The protected column
is `multilabel.protected`, or the first of `attributes.protected` when that is null.
"""

import sys

from debiaslab import distributed, stage_args
from debiaslab.data import ArrayDataset, PreparedSplit, check_both_values, multilabel_columns
from debiaslab.errors import stage_main
from debiaslab.params import MULTILABEL_METHODS, load_params, method_hparams
from debiaslab.train import train_and_save

PREPARED = "data/prepared"


@stage_main("train_multilabel")
def main(argv: list[str]) -> None:
    (method_name,) = stage_args.arguments(argv, "METHOD")
    stage_args.choice("method", method_name, MULTILABEL_METHODS)
    params = load_params("train", "attributes", "multilabel", "hparams")
    distributed.relaunch_under_torchrun(params["train"].nproc_per_node)  # before any work, not just training
    train, val = (PreparedSplit(PREPARED, s) for s in ("train", "val"))
    for split in (train, val):  # each: the protected column holds both values in every split
        labels, protected = multilabel_columns(split, params["multilabel"].protected,
                                               params["attributes"].protected)
        check_both_values(split, labels)
    hparams = method_hparams(params["hparams"], method_name)
    data = [ArrayDataset(s.images, s.label_matrix(labels), s.label(protected))
            for s in (train, val)]
    method, result = train_and_save(
        method_name, len(labels), *data, params["train"], hparams=hparams,
        model_path=f"models/multilabel/{method_name}/model.pt",
        live_dir=f"metrics/train/multilabel/{method_name}", labels=labels,
        protected=protected)
    print(f"train_multilabel {method_name}: {len(labels)} labels, best epoch {result.best_epoch}, "
          f"val mAP {result.best_val_score:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
