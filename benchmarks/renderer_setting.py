"""Is the target visible to a generator and still biased? One renderer setting, read off a run.

Issue 13 part 2 asks for a SynthFaces setting in which a GAN can draw the smile, while a classifier
trained on the skewed data still leans on the glasses. For each candidate, from the repository root:

    dvc exp run -n smile-8-3 -S synthesize.smile_depth=8 -S synthesize.mouth_jitter=3 \\
        -S synthesize.mouth_spread=normal -S synthesize.mouth_thickness=4.4 \\
        train_baseline@Smiling oracle train_gan
    PYTHONPATH=src python benchmarks/renderer_setting.py

It prints only what the choice may rest on, never the test splits:
- the oracle's accuracy on its held-out *unbiased* faces (can a classifier see the target at all?),
  and its accuracy and DEO on the validation split (near 0: the bias is the training data's),
- the baseline's AP and DEO on the *validation* split, thresholded as ``evaluate`` thresholds
  (calibrated on validation), with a bootstrap interval (is it still biased?),
- the DCGAN's fidelity after its last epoch (does G(z) show the target and the protected attribute
  at the data's rates, by the oracle?).
About 6 minutes a setting on 2 cores (synthesize, prepare, the baseline, the oracle, the GAN).
``--faces PATH`` instead writes a picture of the setting: smiling faces above non-smiling ones, at
the prepared size, enlarged (no training; e.g. ``reports/settings/smile_visible.png``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from debiaslab.data import ArrayDataset, PreparedSplit
from debiaslab.device import resolve_device
from debiaslab.evaluate import split_report, threshold_report
from debiaslab.io import atomic_path
from debiaslab.oracle import jpeg_crop_resize, load_oracle, oracle_labels
from debiaslab.params import load_params
from debiaslab.synth import RENDERED_ATTRIBUTES, render_batch, render_settings
from debiaslab.train import load_checkpoint, predict_scores


def validation_bias(val: PreparedSplit, target: str, protected: str) -> dict:
    """The baseline's validation AP, accuracy and DEO (with 95% bootstrap intervals)."""
    method, _ = load_checkpoint(f"models/baseline/{target}/model.pt", resolve_device("auto"))
    y = val.label(target)
    s = predict_scores(method, ArrayDataset(val.images, y))
    report = split_report(y, s, {protected: val.label(protected)}, threshold_report(y, s),
                          n_boot=500, seed=0, kl_bins=50)
    return {"AP": report["AP"], "accuracy": report["accuracy"], "DEO": report[protected]["DEO"]}


def oracle_bias(val: PreparedSplit, target: str, protected: str) -> dict:
    """The oracle's (trained on unbiased faces) validation accuracy and DEO: near 0 if the target
    is drawn without the protected attribute's help."""
    y = val.label(target)
    pred = oracle_labels(load_oracle("models/oracle/model.pt", resolve_device("auto")), val.images,
                         [target])[target]
    report = split_report(y, pred.astype(float), {protected: val.label(protected)}, {"calibrated": 0.5},
                          n_boot=500, seed=0, kl_bins=50)
    return {"accuracy": report["accuracy"], "DEO": report[protected]["DEO"]}


def interval(m: dict) -> str:
    return f"{m['value']:.3f} [{m['lo']:.3f}, {m['hi']:.3f}]"


def write_faces(path: str, synth, image_size: int, *, per_row: int = 8, zoom: int = 3) -> None:
    """Two rows of faces without glasses, Smiling above, not Smiling below (the same nuisance and
    noise in each column), at ``image_size`` px as training sees them, enlarged ``zoom`` times."""
    rows = []
    for smiling in (1, 0):
        attrs = {k: np.zeros(per_row, np.int8) for k in RENDERED_ATTRIBUTES}
        attrs["Smiling"][:] = smiling
        faces = render_batch(attrs, np.random.default_rng(0), **render_settings(synth))
        small = [jpeg_crop_resize(face, synth.jpeg_quality, image_size) for face in faces]
        rows.append(np.concatenate(small, axis=1))
    grid = Image.fromarray(np.concatenate(rows, axis=0))
    with atomic_path(path) as tmp:
        grid.resize((grid.width * zoom, grid.height * zoom), Image.NEAREST).save(tmp, format="PNG")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", metavar="PATH", help="write a picture of the setting instead")
    args = parser.parse_args()
    if args.faces:
        p = load_params("synthesize", "prepare")
        write_faces(args.faces, p["synthesize"], p["prepare"].image_size)
        print(f"wrote {args.faces}")
        return
    params = load_params("synthesize", "attributes")
    target, protected = params["attributes"].targets[0], params["attributes"].protected[0]
    s = params["synthesize"]
    skew = s.correlations[target].skew if target in s.correlations else None
    print(f"setting: smile_depth {s.smile_depth:g}, mouth_jitter {s.mouth_jitter:g} ({s.mouth_spread}), "
          f"mouth_thickness {s.mouth_thickness:g}, skew {skew}")
    oracle = json.loads(Path("metrics/oracle.json").read_text())
    print("oracle, held-out unbiased faces: "
          + ", ".join(f"{k} {v:.3f}" for k, v in oracle["heldout_unbiased_accuracy"].items()))
    val = PreparedSplit("data/prepared", "val")
    judge = oracle_bias(val, target, protected)
    print(f"oracle {target}, validation: accuracy {interval(judge['accuracy'])}, "
          f"DEO({protected}) {interval(judge['DEO'])}")
    bias = validation_bias(val, target, protected)
    print(f"baseline {target}, validation: AP {interval(bias['AP'])}, accuracy "
          f"{interval(bias['accuracy'])}, DEO({protected}) {interval(bias['DEO'])}")
    fidelity = json.loads(Path("metrics/train/gan/metrics.json").read_text())["fidelity"]
    for name in (target, protected, f"{target}_eq_{protected}"):
        rate, real, true = (fidelity[f"{name}_{k}"] for k in ("rate", "data_rate", "true_rate"))
        print(f"GAN fidelity {name}: G(z) {rate:.3f}, real {real:.3f} (by the oracle), true {true:.3f}")


if __name__ == "__main__":
    main()
