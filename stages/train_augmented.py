"""Stage train_augmented METHOD TARGET: the baseline trainer on real + synthetic pairs.

augmented: the latents n_fit.. of sample_latents, G(z) and G(z') (generate_pairs), both labelled
with the target label hallucinated for z (Ramaswamy et al.).
augmented_inversion: real training images inverted to latents (invert_latents), edited with the
same hyperplanes, G(z_inv) and G(z'_inv), both labelled with the real image's target label.
"""

import sys

import numpy as np

from debiaslab import distributed, stage_args
from debiaslab.data import ArrayDataset, PreparedSplit
from debiaslab.device import resolve_device
from debiaslab.errors import stage_main
from debiaslab.gan import generate, load_generator
from debiaslab.gan_debias import FLIPS, cell_counts, load_hyperplanes, read_labels
from debiaslab.io import write_json
from debiaslab.latent_space import edit_latents
from debiaslab.params import load_params
from debiaslab.train import train_and_save

GENERATED = "data/generated"


def sampled_pairs(target: str, protected: str):
    """(images, target labels, protected labels) of G(z) and G(z') for the edited latents."""
    pairs = read_labels(f"{GENERATED}/{target}/pairs.csv", ["edit", "source_index"])
    labels = read_labels(f"{GENERATED}/labels.csv", [target, protected])
    source = pairs["source_index"].to_numpy()
    originals = np.unique(source)
    images = np.concatenate([np.load(f"{GENERATED}/images.npy", mmap_mode="r")[originals],
                             np.load(f"{GENERATED}/{target}/pairs.npy")])
    t = labels[target].to_numpy()
    g = labels[protected].to_numpy()
    flips = pairs["edit"].map(lambda edit: 0 in FLIPS[edit]).to_numpy()  # flip_g2 keeps this one
    return images, np.concatenate([t[originals], t[source]]), np.concatenate(
        [g[originals], np.where(flips, 1 - g[source], g[source])])


def inverted_pairs(target: str, protected: str, train: PreparedSplit, variant: str, max_cos: float,
                   gan_params):
    """Real images inverted and edited: (images, real target labels, protected labels)."""
    device = resolve_device(gan_params.device)
    z = np.load(f"{GENERATED}/inverted/latents.npy")
    rows = np.load(f"{GENERATED}/inverted/rows.npy")
    planes = load_hyperplanes(f"{GENERATED}/{target}/hyperplanes.npz")
    g_real = train.label(protected)[rows]
    t_by_group = (planes["t_g0"], planes["t_g1"]) if "t_g0" in planes else None
    edits = edit_latents(variant, z, t=planes["t"], g=planes["g"], g_hat=g_real, t_by_group=t_by_group,
                         g2=planes.get("g2"), max_cos=max_cos)
    G = load_generator("models/gan/generator.pt", device)
    images = np.concatenate([b for latents in (z, *edits.values())
                             for b in generate(G, latents, device=device, precision=gan_params.precision)])
    t = train.label(target)[rows]
    g_edited = [1 - g_real if 0 in FLIPS[edit] else g_real for edit in edits]
    return images, np.tile(t, 1 + len(edits)), np.concatenate([g_real, *g_edited])


@stage_main("train_augmented")
def main(argv: list[str]) -> None:
    method, target = stage_args.arguments(argv, "METHOD TARGET")
    stage_args.choice("method", method, ("augmented", "augmented_inversion"))
    params = load_params("train", "attributes", "gan", "latent_edit")
    stage_args.target(target, params["attributes"].targets)
    distributed.relaunch_under_torchrun(params["train"].nproc_per_node)  # before any work, not just training
    protected = params["attributes"].protected[0]
    train, val = (PreparedSplit("data/prepared", s) for s in ("train", "val"))
    if method == "augmented":
        images, t, g = sampled_pairs(target, protected)
    else:  # augmented_inversion
        p = params["latent_edit"]
        images, t, g = inverted_pairs(target, protected, train, p.variant, p.max_cos, params["gan"])
    data = ArrayDataset(np.concatenate([train.images, images]),
                        np.concatenate([train.label(target), t]),
                        np.concatenate([train.label(protected), g]))
    _, result = train_and_save("erm", 1, data, ArrayDataset(val.images, val.label(target)),
                               params["train"], model_path=f"models/{method}/{target}/model.pt",
                               live_dir=f"metrics/train/{method}/{target}", attribute=target)
    write_json(f"metrics/augment/{method}/{target}.json", {
        "n_real": len(train), "n_synthetic": len(images), "synthetic_cells": cell_counts(t, g),
        "best_epoch": result.best_epoch, "best_val_AP": round(result.best_val_score, 6)})
    print(f"train_augmented {method}/{target}: {len(train)} real + {len(images)} synthetic, "
          f"val AP {result.best_val_score:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
