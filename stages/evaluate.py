"""Stage evaluate METHOD TARGET: fairness metrics of models/METHOD/TARGET on the test split."""

import sys

from debiaslab import stage_args
from debiaslab.data import ArrayDataset, PreparedSplit
from debiaslab.device import resolve_device, seed_everything
from debiaslab.errors import stage_main
from debiaslab.evaluate import evaluate_classifier, plot_score_histograms
from debiaslab.io import save_figure, write_json
from debiaslab.params import load_params
from debiaslab.train import load_checkpoint, predict_scores

PREPARED = "data/prepared"


@stage_main("evaluate")
def main(argv: list[str]) -> None:
    method_name, target = stage_args.arguments(argv, "METHOD TARGET")
    stage_args.plain_name("method", method_name)  # a folder: models/METHOD/TARGET/model.pt
    params = load_params("evaluate", "attributes")
    stage_args.target(target, params["attributes"].targets)
    p, protected = params["evaluate"], params["attributes"].protected
    seed_everything(p.seed)
    method, _ = load_checkpoint(f"models/{method_name}/{target}/model.pt", resolve_device("auto"))
    val, test = PreparedSplit(PREPARED, "val"), PreparedSplit(PREPARED, "test")
    y_val, y_test = val.label(target), test.label(target)
    s_val = predict_scores(method, ArrayDataset(val.images, y_val))
    s_test = predict_scores(method, ArrayDataset(test.images, y_test))
    groups = {attr: test.label(attr) for attr in protected}
    report = evaluate_classifier(y_val, s_val, y_test, s_test, groups, n_boot=p.n_boot,
                                 seed=p.seed, kl_bins=p.kl_bins)
    write_json(f"metrics/evaluate/{method_name}/{target}.json", report)
    save_figure(plot_score_histograms(s_test, y_test, groups, f"{method_name}: {target}"),
                f"reports/evaluate/{method_name}/{target}_scores.png", dpi=110)
    first = report["test"][protected[0]]
    print(f"evaluate {method_name}/{target}: AP {report['test']['AP']['value']:.4f}, "
          f"DEO({protected[0]}) {first['DEO']['value']:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
