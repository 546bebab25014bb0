"""Stage train_baseline ATTRIBUTE: a binary ERM classifier for a target or protected attribute."""

import sys

from dvclive import Live

from debiaslab.data import ArrayDataset
from debiaslab.device import resolve_device, seed_everything
from debiaslab.errors import stage_main
from debiaslab.params import load_params
from debiaslab.prepare import PreparedSplit
from debiaslab.train import fit, make_method, save_checkpoint

PREPARED = "data/prepared"


@stage_main("train_baseline")
def main(attribute: str) -> None:
    params = load_params("train")["train"]
    generator = seed_everything(params.seed)
    device = resolve_device(params.device)
    train, val = (PreparedSplit(PREPARED, s) for s in ("train", "val"))
    train_data = ArrayDataset(train.images, train.label(attribute))
    val_data = ArrayDataset(val.images, val.label(attribute))
    method = make_method("erm", 1, params, device)
    with Live(f"metrics/train/baseline/{attribute}", dvcyaml=False, save_dvc_exp=False) as live:
        result = fit(method, train_data, val_data, params, generator=generator, live=live)
        live.summary["best_epoch"] = result.best_epoch
        live.summary["best_val_AP"] = round(result.best_val_ap, 6)
    save_checkpoint(f"models/baseline/{attribute}/model.pt", method, params,
                    attribute=attribute, num_outputs=1, image_size=int(train.images.shape[1]),
                    best_epoch=result.best_epoch)
    print(f"train_baseline {attribute}: best epoch {result.best_epoch}, "
          f"val AP {result.best_val_ap:.4f} on {device}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python stages/train_baseline.py ATTRIBUTE")
    main(sys.argv[1])
