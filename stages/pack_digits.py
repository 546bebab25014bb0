"""Stage pack_digits [SEVERITY ...]: decode the bias set once into uint8 arrays, per severity.

The bias set is ``bias_data``: the project's Colored Digits (data/colored_digits, the default) or
a downloaded BiasEnsemble release (cmnist, bffhq, bar, dogs_cats) read in its own layout from
``bias_data.root``, which is only read. The output is data/digits/SEVERITY whichever it is, so
bias_ensemble and train_debias run unchanged. Without arguments (as dvc.yaml runs it) it packs every
severity of ``colored_digits.severities``: one stage rather than one per severity, because DVC hashes
a stage's dependencies on every `dvc status`, and the release folder (43,000 PNGs by default) was a
dependency of each.
"""

import math
import sys

from debiaslab import stage_args
from debiaslab.bias_folder import pack_bias_folder
from debiaslab.colored_digits import severity_dir
from debiaslab.errors import stage_main
from debiaslab.params import PAPER_ITERATIONS, bias_image_size, bias_preset, load_params


@stage_main("pack_digits")
def main(argv: list[str]) -> None:
    params = load_params("colored_digits", "bias_data")
    severities = params["colored_digits"].severities
    chosen = list(argv) or [str(s) for s in severities]  # as DVC writes ${item}: 0.5, 1.0
    for severity in chosen:
        stage_args.severity(severity, severities)
    for severity in chosen:
        pack_severity(severity, params["bias_data"])


def pack_severity(severity: str, data) -> None:
    meta = pack_bias_folder(data.root, severity_dir(float(severity)), f"data/digits/{severity}",
                            image_size=bias_image_size(data), workers=2, layout=data.dataset)
    print(f"pack_digits {severity}: {meta.get('counts', meta)}")
    preset = bias_preset(data)
    if preset:  # BiasEnsemble's members count iterations; bias_ensemble counts epochs
        n, batch = meta["counts"]["train"]["images"], preset["debias_train"]["batch_size"]
        epochs = math.ceil(PAPER_ITERATIONS["bias_ensemble"] * batch / n)
        print(f"pack_digits {severity}: {data.dataset} paper preset: the paper trains "
              f"{PAPER_ITERATIONS['train']:,} steps of batch {batch} (set debias_train.steps, or "
              f"debias_train.epochs {math.ceil(PAPER_ITERATIONS['train'] * batch / n)} on these "
              f"{n:,} images); BiasEnsemble's {PAPER_ITERATIONS['bias_ensemble']:,} iterations are "
              f"{epochs} epochs (bias_ensemble.epochs)")


if __name__ == "__main__":
    main(sys.argv[1:])
