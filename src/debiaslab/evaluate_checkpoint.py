"""``python -m debiaslab.evaluate_checkpoint MODEL DATA [--split test]``: a saved classifier on one
split of a packed bias set, as BiasEnsemble's ``test.py`` evaluates a checkpoint.

MODEL is a ``model.pt`` written by a training stage (``models/debias/1.0/lff_be/model.pt``), DATA a
folder written by ``pack_digits`` (``data/digits/1.0``) or ``faces_bias``, or by
:func:`debiaslab.bias_folder.pack_bias_folder` from a downloaded CMNIST / BFFHQ release. Prints the
accuracy on all samples, the bias-aligned and the bias-conflicting ones (the numbers
``train_debias`` writes for test), or with ``--json`` the same as one JSON object. The checkpoint
is read with ``weights_only=True`` and checked against the data (classes, image size) before use.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .bias_experiment import SPLITS, accuracy_by_alignment, load_bias_splits
from .errors import DebiaslabError, stage_main


def evaluate(model_path: str | Path, data_dir: str | Path, split: str = "test") -> dict:
    """``{"split", "n", "accuracy", "aligned_accuracy", "conflicting_accuracy", "n_aligned",
    "n_conflicting"}`` of the checkpoint ``model_path`` on ``split`` of the packed set ``data_dir``."""
    from .device import resolve_device
    from .train import load_checkpoint, predict_scores

    if split not in SPLITS:
        raise DebiaslabError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    if not Path(data_dir, f"{split}.npy").is_file():
        raise DebiaslabError(f"{data_dir}: no packed {split!r} split here (expected {split}.npy and "
                             f"{split}_labels.csv, as pack_digits or faces_bias write them, e.g. "
                             "data/digits/1.0)")
    data = load_bias_splits(data_dir)[split]
    method, meta = load_checkpoint(model_path, resolve_device("auto"))
    classes, size = meta.get("num_outputs", 1), meta.get("image_size", 32)
    if data.data.images.shape[1] != size or int(data.data.y.max()) >= classes or classes < 2:
        raise DebiaslabError(
            f"{model_path}: a model of {classes} output(s) at {size} px cannot classify {data_dir} "
            f"({int(data.data.y.max()) + 1} classes at {data.data.images.shape[1]} px)")
    pred = predict_scores(method, data.data).argmax(1)
    return {"split": split, "n": len(pred), **accuracy_by_alignment(pred, data),
            "n_aligned": int(data.aligned.sum()), "n_conflicting": int((~data.aligned).sum())}


@stage_main("evaluate_checkpoint")
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m debiaslab.evaluate_checkpoint",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a model.pt written by a training stage")
    parser.add_argument("data", help="a packed bias set, e.g. data/digits/1.0")
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = evaluate(args.model, args.data, args.split)
    if args.json:
        print(json.dumps(result))
        return
    fmt = {k: "-" if result[k] is None else f"{result[k]:.4f}"
           for k in ("accuracy", "aligned_accuracy", "conflicting_accuracy")}
    print(f"{args.model} on {args.data} {args.split} ({result['n']:,} images): accuracy "
          f"{fmt['accuracy']}, aligned {fmt['aligned_accuracy']} ({result['n_aligned']:,}), "
          f"conflicting {fmt['conflicting_accuracy']} ({result['n_conflicting']:,})")


if __name__ == "__main__":
    main(sys.argv[1:])
