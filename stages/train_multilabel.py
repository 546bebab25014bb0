"""Stage train_multilabel METHOD [ALPHA]: one classifier over every non-protected attribute (Wang et al.).

Its logits are what the model-leakage attacker sees. METHOD is one of `methods.multilabel` (erm,
adversarial removal of the protected column from the representation, image_adversarial from the
image; hyperparameters in `hparams.METHOD`). The protected column is `multilabel.protected`, or the
first of `attributes.protected` when that is null. With ALPHA, one of `balanced_subsets.alphas`,
it trains on the α-balanced subset of the training split (Wang et al.'s `--balanced --ratio`;
validation stays whole) and writes under models/multilabel_balanced/alpha_ALPHA/.
"""

import sys

import numpy as np

from debiaslab import distributed, stage_args
from debiaslab.balanced_subsets import alpha_balanced
from debiaslab.data import ArrayDataset, PreparedSplit, check_both_values, multilabel_columns
from debiaslab.errors import DebiaslabError, stage_main
from debiaslab.params import MULTILABEL_METHODS, load_params, method_hparams
from debiaslab.train import train_and_save

PREPARED = "data/prepared"


@stage_main("train_multilabel")
def main(argv: list[str]) -> None:
    method_name, *alpha = stage_args.arguments(argv, "METHOD ALPHA", optional=1)
    stage_args.choice("method", method_name, MULTILABEL_METHODS)
    params = load_params("train", "attributes", "multilabel", "hparams", "balanced_subsets")
    balanced = params["balanced_subsets"]
    if alpha:
        stage_args.listed_number("alpha", alpha[0], balanced.alphas, "balanced_subsets.alphas")
    distributed.relaunch_under_torchrun(params["train"].nproc_per_node)  # before any work, not just training
    train, val = (PreparedSplit(PREPARED, s) for s in ("train", "val"))
    for split in (train, val):  # each: the protected column holds both values in every split
        labels, protected = multilabel_columns(split, params["multilabel"].protected,
                                               params["attributes"].protected)
        check_both_values(split, labels)
    hparams = method_hparams(params["hparams"], method_name)
    data = [ArrayDataset(s.images, s.label_matrix(labels), s.label(protected))
            for s in (train, val)]
    folder = f"multilabel_balanced/alpha_{alpha[0]}" if alpha else "multilabel"
    if alpha:
        rows = alpha_balanced(data[0].y, data[0].g, alpha=float(alpha[0]), seed=balanced.seed)
        data[0] = ArrayDataset(train.images[rows], data[0].y[rows], data[0].g[rows])
        constant = np.flatnonzero(data[0].y.min(0) == data[0].y.max(0))
        if len(constant):
            raise DebiaslabError(f"balanced_subsets.alphas: the {alpha[0]}-balanced training subset "
                                 f"({len(rows)} images) leaves {labels[constant[0]]} of one value; "
                                 "drop the label or use a larger alpha")
    method, result = train_and_save(
        method_name, len(labels), *data, params["train"], hparams=hparams,
        model_path=f"models/{folder}/{method_name}/model.pt",
        live_dir=f"metrics/train/{folder}/{method_name}", labels=labels,
        protected=protected, **({"alpha": float(alpha[0]), "train_rows": len(data[0])} if alpha else {}))
    print(f"train_multilabel {method_name}{f' (alpha {alpha[0]})' if alpha else ''}: {len(labels)} "
          f"labels, {len(data[0])} training images, best epoch {result.best_epoch}, "
          f"val mAP {result.best_val_score:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
