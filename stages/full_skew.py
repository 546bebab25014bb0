"""Stage full_skew TARGET: the GAN paper's fully skewed ablation (its full_skew_tests.py).

A binary target classifier trained only on the training images whose target equals the protected
attribute (`full_skew.opposite`: differs from it), so the two are confounded completely; model
selection on the validation images of the same kind. Its scores on the whole, naturally
distributed test split are then ranked against each: a test AP near the target's own and far
above the protected attribute's means the classifier learned the target, the other way round
that it learned the protected attribute (the one easier to see). With `opposite` the protected
labels are flipped before their AP, as the original does.
"""

import sys

import numpy as np

from debiaslab import distributed, metrics, stage_args
from debiaslab.data import ArrayDataset, PreparedSplit
from debiaslab.errors import DebiaslabError, stage_main
from debiaslab.io import write_json
from debiaslab.params import load_params
from debiaslab.train import predict_scores, train_and_save

PREPARED = "data/prepared"


@stage_main("full_skew")
def main(argv: list[str]) -> None:
    (target,) = stage_args.arguments(argv, "TARGET")
    params = load_params("train", "attributes", "full_skew")
    stage_args.target(target, params["attributes"].targets)
    protected, opposite = params["attributes"].protected[0], params["full_skew"].opposite
    distributed.relaunch_under_torchrun(params["train"].nproc_per_node)  # before any work, not just training
    train, val, test = (PreparedSplit(PREPARED, s) for s in ("train", "val", "test"))
    data = [skewed(split, target, protected, opposite) for split in (train, val)]
    method, result = train_and_save(
        "erm", 1, *data, params["train"], model_path=f"models/full_skew/{target}/model.pt",
        live_dir=f"metrics/train/full_skew/{target}", attribute=target)
    scores = predict_scores(method, ArrayDataset(test.images, test.label(target)))
    g = test.label(protected)
    ap = {target: metrics.average_precision(test.label(target), scores),
          protected: metrics.average_precision(1 - g if opposite else g, scores)}
    write_json(f"metrics/full_skew/{target}.json", {
        "target": target, "protected": protected, "opposite": opposite,
        "train_images": len(data[0]), "best_epoch": result.best_epoch,
        "test_AP": {k: round(float(v), 6) for k, v in ap.items()}})
    print(f"full_skew {target}: trained on {len(data[0])} images where {target} "
          f"{'!=' if opposite else '=='} {protected}; test AP against {target} {ap[target]:.3f}, "
          f"against {protected}{' (flipped)' if opposite else ''} {ap[protected]:.3f}")


def skewed(split: PreparedSplit, target: str, protected: str, opposite: bool) -> ArrayDataset:
    """The images of ``split`` whose target equals (``opposite``: differs from) the protected label."""
    y, g = split.label(target), split.label(protected)
    rows = np.flatnonzero((y != g) if opposite else (y == g))
    if len(np.unique(y[rows])) < 2:
        raise DebiaslabError(f"full_skew: the {split.path.stem} images where {target} "
                             f"{'!=' if opposite else '=='} {protected} hold one value of {target}; "
                             "expected both")
    return ArrayDataset(split.images[rows], y[rows])


if __name__ == "__main__":
    main(sys.argv[1:])
