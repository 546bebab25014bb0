"""Stage train_baseline ATTRIBUTE: a binary ERM classifier for a target or protected attribute."""

import sys

from debiaslab import distributed, stage_args
from debiaslab.data import ArrayDataset, PreparedSplit
from debiaslab.errors import stage_main
from debiaslab.params import load_params
from debiaslab.train import train_and_save

PREPARED = "data/prepared"


@stage_main("train_baseline")
def main(argv: list[str]) -> None:
    (attribute,) = stage_args.arguments(argv, "ATTRIBUTE")
    stage_args.attribute("attribute", attribute)
    params = load_params("train")["train"]
    distributed.relaunch_under_torchrun(params.nproc_per_node)  # before any work, not just training
    train, val = (PreparedSplit(PREPARED, s) for s in ("train", "val"))
    method, result = train_and_save(
        "erm", 1, ArrayDataset(train.images, train.label(attribute)),
        ArrayDataset(val.images, val.label(attribute)), params,
        model_path=f"models/baseline/{attribute}/model.pt",
        live_dir=f"metrics/train/baseline/{attribute}", attribute=attribute)
    print(f"train_baseline {attribute}: best epoch {result.best_epoch}, "
          f"val AP {result.best_val_score:.4f} on {method.device}")


if __name__ == "__main__":
    main(sys.argv[1:])
