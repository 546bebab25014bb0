"""Stage invert_latents: real training images -> GAN latents by optimisation (the inversion variant).

The original inverted images with a TensorFlow encoder; here z = argmin ||G(z) - x||^2 + a small
prior, batched. Writes the latents, which training rows they came from, and a reconstruction plot.
"""

import numpy as np

from debiaslab.data import PreparedSplit
from debiaslab.device import resolve_device, seed_everything
from debiaslab.errors import stage_main
from debiaslab.gan import generate, invert, load_generator
from debiaslab.gan_debias import plot_pairs
from debiaslab.io import atomic_path, save_figure, write_json
from debiaslab.params import load_params

OUT = "data/generated/inverted"


@stage_main("invert_latents")
def main() -> None:
    params = load_params("inversion", "gan")
    p, gan = params["inversion"], params["gan"]
    device = resolve_device(gan.device)
    seed_everything(p.seed)
    G = load_generator("models/gan/generator.pt", device, latent_dim=gan.latent_dim)
    train = PreparedSplit("data/prepared", "train")
    rows = np.sort(np.random.default_rng(p.seed).choice(len(train), min(p.n_images, len(train)),
                                                        replace=False))
    images = np.asarray(train.images[rows])
    z, err = invert(G, images, steps=p.steps, lr=p.lr, prior_weight=p.prior_weight, seed=p.seed,
                    device=device, precision=gan.precision)
    for name, array in (("latents.npy", z), ("rows.npy", rows)):
        with atomic_path(f"{OUT}/{name}") as tmp:
            np.save(tmp, array)
    recon = np.concatenate(list(generate(G, z[:12], device=device, precision=gan.precision)))
    save_figure(plot_pairs(images[:12], {"G(z)": recon}, "GAN inversion: real x and G(z)",
                           first="x", prefix=""),
                "reports/gan/inversion.png", dpi=120)
    write_json("metrics/inversion.json", {"n_images": len(rows), "steps": p.steps,
                                          "mse_mean": round(float(err.mean()), 5),
                                          "mse_median": round(float(np.median(err)), 5),
                                          "latent_norm_mean": round(float(np.linalg.norm(z, axis=1).mean()),
                                                                    3)})
    print(f"invert_latents: {len(rows)} images, reconstruction MSE {err.mean():.4f} (pixels in [-1, 1])")


if __name__ == "__main__":
    main()
