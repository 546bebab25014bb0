"""Stage generate_pairs TARGET: G(z') for every edited latent, re-scored by both judges.

Writes the images (E*M, S, S, 3) and a table saying which latent and edit each came from, with the
labels the baseline classifiers, the oracle (SynthFaces) and, for the renderer generator, the truth
give them; reports how often each edit flipped the protected attribute and kept the target.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from debiaslab import stage_args
from debiaslab.data import ArrayDataset
from debiaslab.device import resolve_device
from debiaslab.errors import stage_main
from debiaslab.gan import generate, load_generator
from debiaslab.gan_debias import hard_labels, pair_diagnostics, plot_pairs, read_labels
from debiaslab.io import atomic_path, save_figure, write_json
from debiaslab.oracle import load_oracle, oracle_labels
from debiaslab.params import load_params
from debiaslab.prepare import NpyWriter
from debiaslab.renderer_gan import RendererGenerator
from debiaslab.train import load_checkpoint, predict_scores

GENERATED = "data/generated"


def baseline_labels(images, names: list[str], thresholds: dict, device) -> pd.DataFrame:
    out = {}
    for name in names:
        method, _ = load_checkpoint(f"models/baseline/{name}/model.pt", device)
        scores = predict_scores(method, ArrayDataset(images, np.zeros(len(images))))
        out[name] = hard_labels(scores, thresholds[name]["f1_threshold"])
    return pd.DataFrame(out)


def prefixed(before: pd.DataFrame, prefix: str, names: list[str]) -> pd.DataFrame:
    """The columns ``prefix + name`` of labels.csv rows, under the plain names."""
    return before[[prefix + n for n in names]].set_axis(names, axis=1).reset_index(drop=True)


def write_pairs(G, edits, device, precision: str, batch_size: int, path: str) -> None:
    size = G.image_size
    n = sum(len(v) for v in edits.values())
    with atomic_path(path) as tmp, NpyWriter(tmp, (n, size, size, 3)) as out:
        for z in edits.values():
            for batch in generate(G, z, device=device, precision=precision, batch_size=batch_size,
                                  progress=True):
                out.write(batch)


@stage_main("generate_pairs")
def main(argv: list[str]) -> None:
    (target,) = stage_args.arguments(argv, "TARGET")
    params = load_params("attributes", "gan", "latents", "latent_edit")
    stage_args.target(target, params["attributes"].targets)
    protected, n_fit = params["attributes"].protected, params["latent_edit"].n_fit
    names = [target, *protected]
    device = resolve_device(params["gan"].device)
    with np.load(f"{GENERATED}/{target}/edited.npz") as f:
        edits = {k: f[k] for k in f.files}
    G = load_generator("models/gan/generator.pt", device)
    write_pairs(G, edits, device, params["gan"].precision, params["latents"].batch_size,
                f"{GENERATED}/{target}/pairs.npy")
    pairs = np.load(f"{GENERATED}/{target}/pairs.npy", mmap_mode="r")
    m = len(next(iter(edits.values())))
    table = pd.DataFrame({"edit": np.repeat(list(edits), m), "source_index": np.tile(np.arange(m) + n_fit,
                                                                                      len(edits))})
    thresholds = json.loads(Path("metrics/hallucinate.json").read_text())
    judged = {"baseline": baseline_labels(pairs, names, thresholds, device)}
    before = read_labels(f"{GENERATED}/labels.csv", names).iloc[table["source_index"]]
    before_by = {"baseline": before[names].reset_index(drop=True)}
    oracle = load_oracle("models/oracle/model.pt", device)
    if oracle is not None:
        judged["oracle"] = pd.DataFrame(oracle_labels(oracle, pairs, names))
        before_by["oracle"] = prefixed(before, "oracle_", names)
    if isinstance(G, RendererGenerator):  # the exact labels: the edit judged without a classifier
        judged["true"] = pd.DataFrame({n: np.concatenate([G.attributes(z)[n] for z in edits.values()])
                                       for n in names})
        before_by["true"] = prefixed(before, "true_", names)
    report = {"generator": params["gan"].source, "n_pairs": len(table)}
    for judge, after in judged.items():
        for col in names:
            table[col if judge == "baseline" else f"{judge}_{col}"] = after[col].to_numpy()
        report[judge] = {edit: pair_diagnostics(target, protected, edit, before_by[judge][rows],
                                                after[rows])
                         for edit in edits for rows in [table["edit"].to_numpy() == edit]}
    with atomic_path(f"{GENERATED}/{target}/pairs.csv") as tmp:
        table.to_csv(tmp, index=False)
    write_json(f"metrics/pairs/{target}.json", report)
    originals = np.load(f"{GENERATED}/images.npy", mmap_mode="r")[n_fit:n_fit + 12]
    save_figure(plot_pairs(originals, {k: pairs[i * m:i * m + 12] for i, k in enumerate(edits)},
                           f"{target}: G(z) and G(z') ({params['latent_edit'].variant})"),
                f"reports/pairs/{target}.png", dpi=120)
    first = report["baseline"][next(iter(edits))]
    print(f"generate_pairs {target}: {len(table)} pairs; baseline judge: target kept "
          f"{first['target_kept']:.2f}, {protected[0]} flipped {first[f'{protected[0]}_flipped']:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
