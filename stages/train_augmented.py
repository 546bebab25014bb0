"""Stage train_augmented METHOD TARGET: the baseline trainer on real + synthetic pairs.

augmented: the latents n_fit.. of sample_latents, G(z) and G(z') (generate_pairs), both labelled
with the target label hallucinated for z (Ramaswamy et al.; with latent_edit.labels=ground_truth,
its true label).
augmented_inversion: real training images inverted to latents (invert_latents), edited with
hyperplanes refitted on those latents and their real labels plus sampled latents (linear_inv.py),
G(z_inv) and G(z'_inv), both labelled with the real image's target label.
Both keep the epoch of the best weighted validation AP, as the original main.py does.
"""

import sys

import numpy as np
import pandas as pd

from debiaslab import distributed, stage_args
from debiaslab.data import ArrayDataset, PreparedSplit
from debiaslab.device import resolve_device
from debiaslab.errors import stage_main
from debiaslab.gan import generate, load_generator
from debiaslab.gan_debias import (
    FLIPS,
    cell_counts,
    fit_all,
    labels_for,
    read_labels,
    weighted_ap_selection,
)
from debiaslab.io import write_json
from debiaslab.latent_space import check_not_parallel, edit_latents
from debiaslab.params import load_params
from debiaslab.train import train_and_save

GENERATED = "data/generated"


def sampled_pairs(target: str, protected: str, label_source: str):
    """(images, target labels, protected labels) of G(z) and G(z') for the edited latents."""
    pairs = read_labels(f"{GENERATED}/{target}/pairs.csv", ["edit", "source_index"])
    labels = labels_for(read_labels(f"{GENERATED}/labels.csv", [target, protected]),
                        [target, protected], label_source)
    source = pairs["source_index"].to_numpy()
    originals = np.unique(source)
    images = np.concatenate([np.load(f"{GENERATED}/images.npy", mmap_mode="r")[originals],
                             np.load(f"{GENERATED}/{target}/pairs.npy")])
    t = labels[target].to_numpy()
    g = labels[protected].to_numpy()
    flips = pairs["edit"].map(lambda edit: 0 in FLIPS[edit]).to_numpy()  # flip_g2 keeps this one
    return images, np.concatenate([t[originals], t[source]]), np.concatenate(
        [g[originals], np.where(flips, 1 - g[source], g[source])])


def refit_hyperplanes(z_inv: np.ndarray, real: pd.DataFrame, names: list[str], p) -> dict:
    """Hyperplanes fitted on the inverted latents with their real labels plus the sampled latents
    with theirs, ``latent_edit.n_fit`` of the union drawn at random, as the original linear_inv.py
    refits them (it inverted val images for this; here the inverted train images serve: val
    picks thresholds and epochs)."""
    z_sampled = np.load(f"{GENERATED}/latents.npy")[:p.n_fit]
    sampled = labels_for(read_labels(f"{GENERATED}/labels.csv", names), names, p.labels).iloc[:p.n_fit]
    z_all = np.concatenate([z_inv, z_sampled])
    labels = pd.concat([real[names], sampled], ignore_index=True)
    keep = np.sort(np.random.default_rng(p.seed).choice(len(z_all), min(p.n_fit, len(z_all)),
                                                        replace=False))
    return fit_all(z_all[keep], labels.iloc[keep], names[0], names[1:], p)


def inverted_pairs(target: str, protected: list[str], train: PreparedSplit, p, gan_params):
    """Real images inverted and edited: (images, real target labels, protected labels, the refitted
    hyperplanes)."""
    device = resolve_device(gan_params.device)
    z = np.load(f"{GENERATED}/inverted/latents.npy")
    rows = np.load(f"{GENERATED}/inverted/rows.npy")
    real = pd.DataFrame({name: train.label(name)[rows] for name in [target, *protected]})
    planes = refit_hyperplanes(z, real, [target, *protected], p)
    if p.variant not in ("reflect", "project"):
        check_not_parallel(planes["t"], planes["g"], max_cos=p.max_cos, names=(target, protected[0]))
    g_real = real[protected[0]].to_numpy()
    t_by_group = (planes["t_g0"], planes["t_g1"]) if "t_g0" in planes else None
    edits = edit_latents(p.variant, z, t=planes["t"], g=planes["g"], g_hat=g_real,
                         t_by_group=t_by_group, g2=planes.get("g2"), max_cos=p.max_cos)
    G = load_generator("models/gan/generator.pt", device)
    images = np.concatenate([b for latents in (z, *edits.values())
                             for b in generate(G, latents, device=device, precision=gan_params.precision)])
    t = real[target].to_numpy()
    g_edited = [1 - g_real if 0 in FLIPS[edit] else g_real for edit in edits]
    return images, np.tile(t, 1 + len(edits)), np.concatenate([g_real, *g_edited]), planes


@stage_main("train_augmented")
def main(argv: list[str]) -> None:
    method, target = stage_args.arguments(argv, "METHOD TARGET")
    stage_args.choice("method", method, ("augmented", "augmented_inversion"))
    params = load_params("train", "attributes", "gan", "latent_edit")
    stage_args.target(target, params["attributes"].targets)
    distributed.relaunch_under_torchrun(params["train"].nproc_per_node)  # before any work, not just training
    p, protected = params["latent_edit"], params["attributes"].protected
    train, val = (PreparedSplit("data/prepared", s) for s in ("train", "val"))
    report = {"generator": params["gan"].source, "labels": p.labels}
    if method == "augmented":
        images, t, g = sampled_pairs(target, protected[0], p.labels)
    else:  # augmented_inversion
        images, t, g, planes = inverted_pairs(target, protected, train, p, params["gan"])
        report["labels"] = f"real (inverted) + {p.labels} (sampled)"
        report["refit_svm_heldout_accuracy"] = {h.name: round(h.accuracy, 4) for h in planes.values()}
    data = ArrayDataset(np.concatenate([train.images, images]),
                        np.concatenate([train.label(target), t]),
                        np.concatenate([train.label(protected[0]), g]))
    _, result = train_and_save("erm", 1, data, ArrayDataset(val.images, val.label(target)),
                               params["train"], model_path=f"models/{method}/{target}/model.pt",
                               live_dir=f"metrics/train/{method}/{target}", attribute=target,
                               score_fn=weighted_ap_selection(val.label(protected[0])))
    write_json(f"metrics/augment/{method}/{target}.json", {
        **report, "n_real": len(train), "n_synthetic": len(images), "synthetic_cells": cell_counts(t, g),
        "best_epoch": result.best_epoch, "best_val_weighted_AP": round(result.best_val_score, 6)})
    print(f"train_augmented {method}/{target}: {len(train)} real + {len(images)} synthetic, "
          f"val weighted AP {result.best_val_score:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
