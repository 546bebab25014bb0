"""Stage hallucinate: label every generated image with the baseline classifiers (and the oracle).

Hard labels use each classifier's F1-optimal threshold on real val data, as in the original code.
The oracle's labels (SynthFaces) and, with gan.source=renderer, the true labels go beside them.
"""

import numpy as np
import pandas as pd

from debiaslab.data import ArrayDataset, PreparedSplit
from debiaslab.device import resolve_device
from debiaslab.errors import stage_main
from debiaslab.gan_debias import agreement, cell_counts, f1_hard_labels
from debiaslab.io import atomic_path, write_json
from debiaslab.oracle import load_oracle, oracle_labels
from debiaslab.params import load_params
from debiaslab.renderer_gan import renderer_at
from debiaslab.train import load_checkpoint, predict_scores

GENERATED = "data/generated"


def true_labels(device, names: list[str]) -> dict[str, np.ndarray]:
    """The renderer generator's exact labels of every G(z); nothing for a trained GAN."""
    G = renderer_at("models/gan/generator.pt", device)
    if G is None:
        return {}
    attributes = G.attributes(np.load(f"{GENERATED}/latents.npy"))
    return {name: attributes[name].astype(np.int64) for name in names}


@stage_main("hallucinate")
def main() -> None:
    attrs = load_params("attributes")["attributes"]
    names = [*attrs.targets, *attrs.protected]
    device = resolve_device("auto")
    images = np.load(f"{GENERATED}/images.npy", mmap_mode="r")
    val = PreparedSplit("data/prepared", "val")
    table, report = pd.DataFrame({"index": np.arange(len(images))}), {"n_images": len(images)}
    for name in names:
        method, _ = load_checkpoint(f"models/baseline/{name}/model.pt", device)
        s_val = predict_scores(method, ArrayDataset(val.images, val.label(name)))
        s_gen = predict_scores(method, ArrayDataset(images, np.zeros(len(images))))
        table[name], threshold = f1_hard_labels(val.label(name), s_val, s_gen)
        table[f"{name}_score"] = s_gen.round(6)
        report[name] = {"f1_threshold": threshold,  # unrounded: generate_pairs applies it again
                        "positive_rate": round(float(table[name].mean()), 4)}
    oracle = load_oracle("models/oracle/model.pt", device)
    if oracle is not None:  # SynthFaces: how often is the hallucinated label right?
        judged = oracle_labels(oracle, images, names)
        for name in names:
            table[f"oracle_{name}"] = judged[name]
            report[name]["oracle_agreement"] = agreement(table[name], judged[name])
    truth = true_labels(device, names)
    for name, labels in truth.items():  # the renderer generator: the exact labels of G(z)
        table[f"true_{name}"] = labels
        report[name]["true_agreement"] = agreement(table[name], labels)
    for g in attrs.protected:
        for t in attrs.targets:
            report[f"cells_{t}_{g}"] = cell_counts(table[t].to_numpy(), table[g].to_numpy())
    with atomic_path(f"{GENERATED}/labels.csv") as tmp:
        table.to_csv(tmp, index=False)
    write_json("metrics/hallucinate.json", report)
    print("hallucinate: " + ", ".join(f"{n} positive {report[n]['positive_rate']:.2f}" for n in names))


if __name__ == "__main__":
    main()
