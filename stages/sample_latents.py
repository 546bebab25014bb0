"""Stage sample_latents: N seeded latents z and their images G(z), packed like the real data."""

import numpy as np

from debiaslab.device import resolve_device
from debiaslab.errors import stage_main
from debiaslab.gan import generate, load_generator, sample_latents
from debiaslab.io import atomic_path
from debiaslab.params import load_params
from debiaslab.prepare import NpyWriter

OUT = "data/generated"


@stage_main("sample_latents")
def main() -> None:
    params = load_params("gan", "latents")
    p, gan = params["latents"], params["gan"]
    device = resolve_device(gan.device)
    G = load_generator("models/gan/generator.pt", device, latent_dim=gan.latent_dim)
    z = sample_latents(p.n, gan.latent_dim, p.seed)
    size = G.image_size
    with atomic_path(f"{OUT}/latents.npy") as tmp:
        np.save(tmp, z)
    with atomic_path(f"{OUT}/images.npy") as tmp, NpyWriter(tmp, (p.n, size, size, 3)) as out:
        for batch in generate(G, z, device=device, precision=gan.precision, batch_size=p.batch_size,
                              progress=True):
            out.write(batch)
    print(f"sample_latents: {p.n} latents of {gan.latent_dim} dimensions, {size}-px images")


if __name__ == "__main__":
    main()
