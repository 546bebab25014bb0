"""Stage compare TARGET: AP against DEO for the baseline, GAN-augmented and fair-sampling classifiers."""

import json
import sys

from debiaslab import stage_args
from debiaslab.errors import DebiaslabError, stage_main
from debiaslab.gan_debias import plot_ap_vs_deo
from debiaslab.io import save_figure
from debiaslab.params import GAN_CLASSIFIERS, load_params


@stage_main("compare")
def main(argv: list[str]) -> None:
    (target,) = stage_args.arguments(argv, "TARGET")
    params = load_params("attributes", "methods")
    attributes = params["attributes"]
    stage_args.target(target, attributes.targets)
    protected = attributes.protected[0]
    reports = {}
    for method in (*GAN_CLASSIFIERS, *params["methods"].fair):
        path = f"metrics/evaluate/{method}/{target}.json"
        try:
            with open(path) as f:
                reports[method] = json.load(f)
        except FileNotFoundError:
            raise DebiaslabError(f"{path}: not found (run dvc repro compare@{target})") from None
    save_figure(plot_ap_vs_deo(reports, protected, f"{target}: AP against DEO (95% intervals)"),
                f"reports/compare/{target}_ap_vs_deo.png", dpi=120)
    for method, r in reports.items():
        print(f"compare {target} {method}: AP {r['test']['AP']['value']:.4f}, "
              f"DEO {r['test'][protected]['DEO']['value']:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
