"""The SynthFaces renderer as a generator (``gan.source: renderer``): an ideal GAN with a known latent space.

Why: the latent-space method can fail in three places, the GAN, the hallucinated labels and the
edit, and on real data they cannot be told apart. With the renderer as the generator the first is
gone: every attribute is exactly linear in z, and the true labels of G(z) and G(z') are known. What
the method achieves here is its ceiling on this data; SynthFaces only.

The map z -> face, for z ~ N(0, I_d), d >= :data:`MIN_LATENT_DIM`:

- Attribute k of :data:`synth.RENDERED_ATTRIBUTES` owns coordinate k and is 1 when u_k . z is above
  the normal quantile of 1 - P(attribute): u_k = e_k, except for the target of a correlated pair
  (target t, protected g, skew s), whose direction is u_t = cos(theta) e_g + sin(theta) e_t with
  theta = pi (1 - s). For Gaussian z, P(sign(u_t . z) = sign(u_g . z)) = 1 - theta / pi = s: the
  training set's correlation, with P(t = 1) = P(g = 1) = 1/2 as synthesize draws them.
- Every nuisance factor (position, scale, colours, mouth bend and width) is a smooth function of
  its own later coordinate: Phi(z_j) mapped onto the factor's range, or sigma * z_j for a Gaussian
  one. :class:`LatentDraws` hands the coordinates to :meth:`synth.Nuisance.sample` in place of a
  random generator, so the two share one definition of the faces.
- The pixel noise is seeded by the bytes of z: the same z always gives the same image.

Coordinates past those are unused, like the directions a GAN ignores. Each face goes through the
real data's path: render at 178 x 218, JPEG, crop, resize.
"""

from __future__ import annotations

import hashlib
import math
from concurrent.futures import ThreadPoolExecutor
from statistics import NormalDist

import numpy as np
import torch
from scipy.special import ndtr

from .errors import DebiaslabError
from .synth import (
    CHUNK,
    HEIGHT,
    RENDERED_ATTRIBUTES,
    WIDTH,
    Nuisance,
    check_correlations,
    render_batch,
    render_settings,
)

NUISANCE_DIMS = 29  # the draws of synth.Nuisance.sample (a test checks it consumes exactly these)
MIN_LATENT_DIM = len(RENDERED_ATTRIBUTES) + NUISANCE_DIMS


class LatentDraws:
    """The random draws of :meth:`synth.Nuisance.sample`, read off latent coordinates in order.

    Each draw of shape (n, ...) takes the next prod(...) columns of the (n, k) latent block: a
    normal draw is ``loc + scale * z``, a uniform one ``low + (high - low) * Phi(z)``, an integer
    one the matching quantile bin.
    """

    def __init__(self, z: np.ndarray):
        self.z = np.asarray(z, np.float64)
        self.used = 0

    def _take(self, size) -> np.ndarray:
        shape = (size,) if isinstance(size, int) else tuple(size)
        width = math.prod(shape[1:])
        if self.used + width > self.z.shape[1]:
            raise DebiaslabError(f"renderer generator: the nuisance needs more than the "
                                 f"{self.z.shape[1]} latent coordinates it was given")
        block = self.z[:, self.used:self.used + width]
        self.used += width
        return block.reshape(shape)

    def normal(self, loc: float, scale: float, size) -> np.ndarray:
        return loc + scale * self._take(size)

    def random(self, size) -> np.ndarray:
        return ndtr(self._take(size))

    def uniform(self, low: float, high: float, size) -> np.ndarray:
        return low + (high - low) * self.random(size)

    def integers(self, low: int, high: int, size) -> np.ndarray:
        return np.minimum(low + np.floor((high - low) * self.random(size)), high - 1).astype(np.int64)


def attribute_directions(correlations: dict, base_rate: float, latent_dim: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(unit directions (A, d), thresholds (A,)) of the rendered attributes, in
    RENDERED_ATTRIBUTES order: attribute a is 1 where directions[a] . z > thresholds[a]."""
    check_correlations(correlations)
    index = {name: k for k, name in enumerate(RENDERED_ATTRIBUTES)}
    directions = np.eye(len(RENDERED_ATTRIBUTES), latent_dim)
    thresholds = np.full(len(RENDERED_ATTRIBUTES), NormalDist().inv_cdf(1.0 - base_rate))
    for target, corr in correlations.items():
        t, g = index[target], index[corr.protected]
        theta = math.pi * (1.0 - corr.skew)
        directions[t] = 0.0
        directions[t, g], directions[t, t] = math.cos(theta), math.sin(theta)
        thresholds[t] = thresholds[g] = 0.0  # synthesize draws both with P = 1/2
    return directions, thresholds


def pixel_noise(z_row: np.ndarray) -> np.ndarray:
    """Standard normal pixel noise (218, 178, 3), seeded by the latent's bytes."""
    digest = hashlib.blake2b(np.ascontiguousarray(z_row, np.float32).tobytes(), digest_size=16).digest()
    rng = np.random.default_rng(np.frombuffer(digest, np.uint32))
    return rng.standard_normal((HEIGHT, WIDTH, 3), dtype=np.float32)


class RendererGenerator(torch.nn.Module):
    """z (n, latent_dim) -> SynthFaces images (n, 3, S, S) in [-1, 1], as the DCGAN's output.

    Not differentiable, no weights: :meth:`attributes` gives the true labels of any latents.
    """

    differentiable = False

    def __init__(self, latent_dim: int, image_size: int, *, correlations: dict, base_rate: float,
                 render: dict, jpeg_quality: int, workers: int = 1):
        """``render``: :func:`synth.render_settings` of the synthesize params the faces follow."""
        super().__init__()
        if latent_dim < MIN_LATENT_DIM:
            raise DebiaslabError(f"gan.source=renderer needs gan.latent_dim >= {MIN_LATENT_DIM} "
                                 f"({len(RENDERED_ATTRIBUTES)} attributes + {NUISANCE_DIMS} nuisance "
                                 f"coordinates), got {latent_dim}")
        self.latent_dim, self.image_size, self.workers = latent_dim, image_size, workers
        self.render_params = dict(render)
        self.jpeg_quality = jpeg_quality
        self.directions, self.thresholds = attribute_directions(correlations, base_rate, latent_dim)

    def attributes(self, z: np.ndarray) -> dict[str, np.ndarray]:
        """The true 0/1 attributes of G(z)."""
        on = (np.asarray(z, np.float64) @ self.directions.T) > self.thresholds
        return {name: on[:, k].astype(np.int8) for k, name in enumerate(RENDERED_ATTRIBUTES)}

    def render(self, z: np.ndarray) -> np.ndarray:
        """uint8 images (n, S, S, 3), rendered CHUNK faces at a time on ``workers`` threads."""
        z = np.asarray(z, np.float32)
        chunks = [z[s:s + CHUNK] for s in range(0, len(z), CHUNK)]
        with ThreadPoolExecutor(self.workers) as pool:
            parts = list(pool.map(self._render_chunk, chunks))
        return np.concatenate(parts) if parts else np.empty((0, self.image_size, self.image_size, 3),
                                                            np.uint8)

    def _render_chunk(self, z: np.ndarray) -> np.ndarray:
        from .oracle import jpeg_crop_resize

        attrs = self.attributes(z)
        first = len(RENDERED_ATTRIBUTES)
        nuisance = Nuisance.sample(len(z), attrs["Pale_Skin"], attrs["Blond_Hair"],
                                   LatentDraws(z[:, first:first + NUISANCE_DIMS]),
                                   self.render_params["mouth_jitter"], self.render_params["mouth_spread"])
        noise = np.stack([pixel_noise(row) for row in z])
        faces = render_batch(attrs, None, nuisance=nuisance, noise=noise, **self.render_params)
        return np.stack([jpeg_crop_resize(face, self.jpeg_quality, self.image_size) for face in faces])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        images = torch.from_numpy(self.render(z.detach().float().cpu().numpy()))
        x = images.permute(0, 3, 1, 2).float() / 127.5 - 1.0  # exact inverse of gan.to_uint8
        return x.to(z.device)

    def config(self) -> dict:
        """Everything :func:`from_config` needs, as plain values (a weights-only checkpoint)."""
        return {"latent_dim": self.latent_dim, "image_size": self.image_size}


def renderer_checkpoint(latent_dim: int, image_size: int, synth_params) -> dict:
    """The train_gan output for gan.source=renderer: the settings the renderer draws with."""
    generator_from_params(latent_dim, image_size, synth_params)  # fails now, not two stages later
    return {"source": "renderer", "config": {"latent_dim": latent_dim, "image_size": image_size},
            "render": {"correlations": {t: [c.protected, float(c.skew)]
                                        for t, c in sorted(synth_params.correlations.items())},
                       "base_rate": float(synth_params.base_rate),
                       "settings": render_settings(synth_params),
                       "jpeg_quality": int(synth_params.jpeg_quality),
                       "workers": int(synth_params.workers)}}


def generator_from_params(latent_dim: int, image_size: int, synth_params) -> RendererGenerator:
    return RendererGenerator(latent_dim, image_size, correlations=synth_params.correlations,
                             base_rate=synth_params.base_rate, render=render_settings(synth_params),
                             jpeg_quality=synth_params.jpeg_quality, workers=synth_params.workers)


def from_checkpoint(ckpt: dict, path: str) -> RendererGenerator:
    """The renderer generator a train_gan checkpoint describes; a one-line error if malformed."""
    from .params import Correlation

    render, config = ckpt.get("render"), ckpt["config"]
    try:
        correlations = {t: Correlation(protected=p, skew=s) for t, (p, s) in render["correlations"].items()}
        return RendererGenerator(config["latent_dim"], config["image_size"], correlations=correlations,
                                 render=render_settings(render["settings"]),
                                 **{k: render[k] for k in ("base_rate", "jpeg_quality", "workers")})
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise DebiaslabError(f"{path}: not a renderer generator checkpoint of this project "
                             f"({type(err).__name__}: {err})") from None


def renderer_at(path, device) -> RendererGenerator | None:
    """The renderer generator if ``path`` (train_gan's output) describes one, else None, without
    building the GAN it describes."""
    from .checkpoints import load_weights_file

    ckpt = load_weights_file(path, device, what="GAN checkpoint")
    if isinstance(ckpt, dict) and ckpt.get("source") == "renderer":
        return from_checkpoint(ckpt, str(path))
    return None
