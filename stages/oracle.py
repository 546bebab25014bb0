"""Stage oracle: classifiers for the targets and protected attributes, trained on an unbiased render.

SynthFaces only (oracle.enabled); it judges hallucinated labels and edited pairs independently of
the biased baseline classifiers. With oracle.enabled = false it writes a marker and no model.
"""

from dataclasses import replace

import numpy as np

from debiaslab import distributed
from debiaslab.data import PreparedSplit
from debiaslab.device import resolve_device
from debiaslab.errors import stage_main
from debiaslab.io import write_json
from debiaslab.oracle import check_oracle_request, oracle_labels, render_unbiased, save_disabled, train_oracle
from debiaslab.params import load_params
from debiaslab.train import load_checkpoint

MODEL = "models/oracle/model.pt"
LIVE = "metrics/train/oracle"


@stage_main("oracle")
def main() -> None:
    params = load_params("oracle", "synthesize", "prepare", "train", "attributes")
    distributed.relaunch_under_torchrun(params["train"].nproc_per_node)  # before any work, not just training
    p, attrs = params["oracle"], params["attributes"]
    if not p.enabled:
        save_disabled(MODEL, LIVE)
        write_json("metrics/oracle.json", {"enabled": False})
        print("oracle: disabled (real data has no oracle)")
        return
    names = [*attrs.targets, *attrs.protected]
    check_oracle_request(names, p.n_images, p.epochs)
    images, labels = render_unbiased(p.n_images, params["synthesize"],
                                     image_size=params["prepare"].image_size, seed=p.seed,
                                     workers=params["synthesize"].workers)
    train_params = replace(params["train"], epochs=p.epochs, seed=p.seed)
    heldout = train_oracle(images, labels, names, train_params, model_path=MODEL,
                           live_dir=LIVE)
    # How well it judges the real (biased) test split, where labels are known
    test = PreparedSplit("data/prepared", "test")
    judged = oracle_labels(load_checkpoint(MODEL, resolve_device(train_params.device)), test.images, names)
    real = {n: round(float(np.mean(judged[n] == test.label(n))), 4) for n in names}
    write_json("metrics/oracle.json", {"enabled": True, "heldout_unbiased_accuracy": heldout,
                                       "real_test_accuracy": real})
    print("oracle: " + ", ".join(f"{n} {heldout[n]:.3f}/{real[n]:.3f}" for n in names)
          + " (unbiased held-out / real test accuracy)")


if __name__ == "__main__":
    main()
