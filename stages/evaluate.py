"""Stage evaluate METHOD TARGET: fairness metrics of models/METHOD/TARGET on the test split, and on
the balanced test split (data/balanced_test, SynthFaces only) when the balanced_test stage wrote one."""

import sys
from pathlib import Path

from debiaslab import stage_args
from debiaslab.data import ArrayDataset, PreparedSplit
from debiaslab.device import resolve_device, seed_everything
from debiaslab.errors import stage_main
from debiaslab.evaluate import Scored, evaluate_classifier, plot_score_histograms
from debiaslab.io import save_figure, write_json
from debiaslab.params import load_params
from debiaslab.train import load_checkpoint, predict_scores

PREPARED = "data/prepared"
BALANCED = "data/balanced_test"  # test.npy and test_labels.csv, or only a marker when disabled


def scored(method, split: PreparedSplit, target: str, protected: list[str]) -> Scored:
    """Labels, scores and protected labels of one split (all labels from the split's own CSV)."""
    y = split.label(target)
    return Scored(y, predict_scores(method, ArrayDataset(split.images, y)),
                  {attr: split.label(attr) for attr in protected})


@stage_main("evaluate")
def main(argv: list[str]) -> None:
    method_name, target = stage_args.arguments(argv, "METHOD TARGET")
    stage_args.plain_name("method", method_name)  # a folder: models/METHOD/TARGET/model.pt
    params = load_params("evaluate", "attributes")
    stage_args.target(target, params["attributes"].targets)
    p, protected = params["evaluate"], params["attributes"].protected
    seed_everything(p.seed)
    method, _ = load_checkpoint(f"models/{method_name}/{target}/model.pt", resolve_device("auto"))
    val = scored(method, PreparedSplit(PREPARED, "val"), target, [])
    test = scored(method, PreparedSplit(PREPARED, "test"), target, protected)
    balanced = (scored(method, PreparedSplit(BALANCED, "test"), target, protected)
                if Path(BALANCED, "test.npy").is_file() else None)
    report = evaluate_classifier(val.y, val.s, test.y, test.s, test.groups, n_boot=p.n_boot,
                                 seed=p.seed, kl_bins=p.kl_bins, balanced=balanced)
    write_json(f"metrics/evaluate/{method_name}/{target}.json", report)
    save_figure(plot_score_histograms(test.s, test.y, test.groups, f"{method_name}: {target}"),
                f"reports/evaluate/{method_name}/{target}_scores.png", dpi=110)
    print(f"evaluate {method_name}/{target}: AP {report['test']['AP']['value']:.4f}, "
          f"DEO({protected[0]}) test {deo(report['test'], protected[0])}"
          + (f", balanced {deo(report['balanced'], protected[0])}" if balanced else ""))


def deo(split: dict, attr: str) -> str:
    """'0.1234 [0.0500, 0.2100]': DEO and its 95% interval, as printed."""
    d = split[attr]["DEO"]
    interval = "" if d["lo"] is None else f" [{d['lo']:.4f}, {d['hi']:.4f}]"
    return ("n/a" if d["value"] is None else f"{d['value']:.4f}") + interval


if __name__ == "__main__":
    main(sys.argv[1:])
