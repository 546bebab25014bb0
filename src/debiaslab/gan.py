"""The GAN whose latent space the de-biasing method edits: a small DCGAN trained on the prepared data.

Why these choices: Ramaswamy et al. need a latent space in which attributes are linearly separable
and an edit along one normal changes one attribute. On two CPU cores the GAN gets minutes, not
days, so it uses what converges fastest at small scale: hinge loss with spectral normalisation in
the discriminator (stable without tuning), Adam with beta1 = 0, bf16 autocast + channels_last, and
an exponential moving average of the generator's weights (smoother samples, smoother latent space).
The pretrained CelebA PGAN of the paper is available through :mod:`debiaslab.pgan` (a native generator).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm
from tqdm import tqdm

from .checkpoints import describe, load_module_weights, load_weights_file, missing_keys
from .data import ArrayDataset
from .device import autocast
from .errors import DebiaslabError


def _up(c_in: int, c_out: int) -> nn.Sequential:
    # nearest upsampling + 3x3 conv: no checkerboard artefacts of strided transposed convs
    return nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def _channels(width: int, levels: int) -> list[int]:
    """Widths from the 4x4 base to the output: 8w, 4w, 2w, w, w, ..."""
    return [width * max(2 ** (3 - k), 1) for k in range(levels + 1)]


class Generator(nn.Module):
    """z (n, latent_dim) -> images (n, 3, S, S) in [-1, 1]; S = 4 * 2**levels."""

    def __init__(self, latent_dim: int, width: int, image_size: int):
        super().__init__()
        levels = _levels(image_size)
        ch = _channels(width, levels)
        self.latent_dim, self.width, self.image_size = latent_dim, width, image_size
        self.base = nn.Sequential(nn.Linear(latent_dim, ch[0] * 16, bias=False),
                                  nn.Unflatten(1, (ch[0], 4, 4)), nn.BatchNorm2d(ch[0]),
                                  nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*(_up(ch[k], ch[k + 1]) for k in range(levels)))
        self.out = nn.Conv2d(ch[-1], 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.out(self.blocks(self.base(z))).float())


class Discriminator(nn.Module):
    """Spectrally normalised conv net: (n, 3, S, S) -> (n,) unbounded realness scores."""

    def __init__(self, width: int, image_size: int):
        super().__init__()
        levels = _levels(image_size)
        ch = _channels(width, levels)[::-1]
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(3, ch[0], 3, padding=1)), nn.LeakyReLU(0.2)]
        for k in range(levels):
            layers += [spectral_norm(nn.Conv2d(ch[k], ch[k + 1], 4, stride=2, padding=1)),
                       nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.out = spectral_norm(nn.Linear(ch[-1] * 16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x).flatten(1)).float().squeeze(1)


def _levels(image_size: int) -> int:
    levels = math.log2(image_size / 4)
    if image_size < 8 or levels != int(levels):
        raise DebiaslabError(f"gan: image size {image_size} is not a power of two >= 8 "
                             "(set prepare.image_size to 16, 32, 64 or 128)")
    return int(levels)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    # warm-up: early on the average would be dominated by the random initial weights
    decay = min(decay, (1 + step) / (10 + step))
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(b)  # BatchNorm statistics follow the live generator


def sample_latents(n: int, latent_dim: int, seed: int) -> np.ndarray:
    """N(0, I) latents, float32, the same for a seed on every machine (NumPy's PCG64)."""
    return np.random.default_rng(seed).standard_normal((n, latent_dim), dtype=np.float32)


@torch.inference_mode()
def generate(generator: nn.Module, z: np.ndarray, *, device: torch.device, precision: str = "bf16",
             batch_size: int = 512, progress: bool = False) -> Iterator[np.ndarray]:
    """Yield uint8 NHWC image batches for latents ``z``, batch by batch (streamed, bounded memory)."""
    generator.eval()
    for start in tqdm(range(0, len(z), batch_size), desc="generate", unit="batch", disable=not progress):
        zb = torch.from_numpy(np.ascontiguousarray(z[start:start + batch_size])).to(device)
        with autocast(device, precision):
            x = generator(zb)
        yield to_uint8(x)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] NCHW floats -> uint8 NHWC, the layout of the prepared real data."""
    x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def hinge_losses(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()


def train_gan(images: np.ndarray, params, *, device: torch.device, generator: torch.Generator,
              on_epoch: Callable[[int, dict, nn.Module], None] | None = None,
              progress: bool = True) -> nn.Module:
    """Train a DCGAN on uint8 NHWC ``images``; return the EMA generator (eval mode).

    ``on_epoch(epoch, logs, ema_generator)`` is called after every epoch (logging, sample grids).
    """
    if params.batch_size > len(images) or min(params.lr_g, params.lr_d) <= 0:
        raise DebiaslabError(f"gan: batch_size {params.batch_size} must not exceed the {len(images)} "
                             "training images, and lr_g, lr_d must be positive")
    size = images.shape[1]
    G = Generator(params.latent_dim, params.g_width, size).to(device, memory_format=torch.channels_last)
    D = Discriminator(params.d_width, size).to(device, memory_format=torch.channels_last)
    ema = copy.deepcopy(G).eval()
    opt_g = torch.optim.Adam(G.parameters(), lr=params.lr_g, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=params.lr_d, betas=(0.0, 0.99))
    data = ArrayDataset(images, np.zeros(len(images), np.float32))
    n_batches = len(data) // params.batch_size  # full batches only: BatchNorm dislikes a tail of 3
    step = 0
    for epoch in range(1, params.epochs + 1):
        order = torch.randperm(len(data), generator=generator).numpy()[:n_batches * params.batch_size]
        sums = {"d_loss": 0.0, "g_loss": 0.0, "d_real": 0.0, "d_fake": 0.0}
        batches = data.batches(params.batch_size, device, order=order, generator=generator,
                               hflip=params.hflip)
        for batch in tqdm(batches, total=n_batches, desc=f"gan epoch {epoch}/{params.epochs}",
                          unit="batch", leave=False, disable=not progress):
            z = torch.randn(len(batch.x), params.latent_dim, generator=generator).to(device)
            with autocast(device, params.precision):
                fake = G(z)
                d_real, d_fake = D(batch.x), D(fake.detach())
            d_loss = hinge_losses(d_real, d_fake)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            with autocast(device, params.precision):
                g_loss = -D(fake).mean()
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            step += 1
            update_ema(ema, G, params.ema_decay, step)
            for key, value in (("d_loss", d_loss), ("g_loss", g_loss), ("d_real", d_real.mean()),
                               ("d_fake", d_fake.mean())):
                sums[key] += value.item()
        logs = {k: v / n_batches for k, v in sums.items()}
        _check_finite(logs, epoch, params)
        if on_epoch is not None:
            on_epoch(epoch, logs, ema)
    return ema


def _check_finite(logs: dict[str, float], epoch: int, params) -> None:
    """Stop a diverged GAN: NaN weights would train on and be saved as the project's generator."""
    bad = next((k for k, v in logs.items() if not math.isfinite(v)), None)
    if bad is not None:
        raise DebiaslabError(f"gan training diverged: {bad} is {logs[bad]} in epoch {epoch} (lower the "
                             f"learning rates, gan.lr_g = {params.lr_g}, gan.lr_d = {params.lr_d})")


def generator_config(generator: Generator) -> dict:
    return {"latent_dim": generator.latent_dim, "width": generator.width,
            "image_size": generator.image_size}


def load_generator(path, device: torch.device, *, latent_dim: int | None = None) -> nn.Module:
    """The generator saved by the train_gan stage (weights only): a DCGAN, a PGAN release's weights
    or the renderer's settings;
    with ``latent_dim``, a clear error unless the generator takes latents of that size."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise DebiaslabError(f"{path}: no GAN checkpoint (run the train_gan stage, or set "
                             "gan.source=checkpoint with gan.checkpoint pointing to a file)")
    ckpt = load_weights_file(path, device, what="GAN checkpoint")
    config = _checked_config(ckpt, path)
    if ckpt.get("source") == "renderer":
        from .renderer_gan import from_checkpoint

        generator = from_checkpoint(ckpt, str(path))
    elif ckpt.get("source") == "pgan":
        from .pgan import PGANGenerator, PretrainedGenerator, pgan_options

        try:
            net = PGANGenerator(pgan_options(ckpt["pgan"], f"{path}: pgan"))
        except (DebiaslabError, TypeError, AttributeError) as err:
            raise DebiaslabError(f"{path}: not a PGAN checkpoint of this project ({err})") from None
        load_module_weights(net, ckpt["state_dict"], str(path))
        generator = PretrainedGenerator(net.to(device), config["image_size"])
    else:
        try:
            generator = Generator(**config).to(device, memory_format=torch.channels_last)
        except DebiaslabError as err:
            raise DebiaslabError(f"{path}: {err}") from None
        load_module_weights(generator, ckpt["state_dict"], str(path))
    if latent_dim is not None:
        check_latent_dim(generator, latent_dim, str(path))
    return generator.eval()


def _checked_config(ckpt, path) -> dict:
    """The generator config of a loaded GAN checkpoint; anything else is a one-line error."""
    what = f"{path}: not a GAN checkpoint of this project"
    if not isinstance(ckpt, dict):
        raise DebiaslabError(f"{what} (it holds {describe(ckpt)}, not a dict)")
    needed = {"pgan": ("config", "pgan", "state_dict"), "renderer": ("config", "render")}.get(
        ckpt.get("source"), ("config", "state_dict"))
    if missing := missing_keys(ckpt, needed):
        classifier = not missing_keys(ckpt, ("method", "train", "meta"))
        raise DebiaslabError(f"{what} (missing keys: {', '.join(missing)}"
                             f"{'; it looks like a classifier checkpoint' if classifier else ''})")
    config = ckpt["config"]
    keys = {"pgan": ("latent_dim", "image_size"), "renderer": ("latent_dim", "image_size")}.get(
        ckpt.get("source"), ("latent_dim", "width", "image_size"))
    if (not isinstance(config, dict) or set(config) - {"latent_dim", "width", "image_size"}
            or any(not isinstance(config.get(k), int) or config[k] < 1 for k in keys)):
        raise DebiaslabError(f"{what} (config {config!r} is not positive integers "
                             f"{', '.join(keys)})")
    return config


def check_latent_dim(generator: nn.Module, latent_dim: int, where: str) -> None:
    if generator.latent_dim != latent_dim:
        raise DebiaslabError(f"{where}: latent size mismatch: the GAN takes {generator.latent_dim}-d "
                             f"latents, got {latent_dim}-d (set gan.latent_dim to {generator.latent_dim})")


def invert(generator: nn.Module, images: np.ndarray, *, steps: int, lr: float, prior_weight: float,
           seed: int, device: torch.device, precision: str = "bf16", batch_size: int = 256,
           progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """GAN inversion by optimisation: z = argmin ||G(z) - x||^2 + prior_weight * (||z||^2 / d - 1)^2.

    Returns (latents float32 (n, d), per-image mean squared pixel error in [-1, 1] units, after the
    last step). The generator must be differentiable (not the renderer). The prior keeps ||z||^2
    near d, the shell where N(0, I) latents live and where the
    hyperplanes were fitted; a plain ||z||^2 penalty would pull latents toward the origin instead.
    """
    if getattr(generator, "differentiable", True) is False:
        raise DebiaslabError("gan.source=renderer: the renderer is not differentiable, so real images "
                             "cannot be inverted; the inversion variant needs a trained GAN (run the "
                             "sampled variant's stages, e.g. evaluate@augmented-TARGET)")
    generator.eval()
    for p in generator.parameters():
        p.requires_grad_(False)
    rng = torch.Generator().manual_seed(seed)
    latents, errors = [], []
    data = ArrayDataset(images, np.zeros(len(images), np.float32))
    for batch in tqdm(data.batches(batch_size, device), total=-(-len(data) // batch_size),
                      desc="invert", unit="batch", disable=not progress):
        z = torch.randn(len(batch.x), generator.latent_dim, generator=rng).to(device).requires_grad_()
        opt = torch.optim.Adam([z], lr=lr)
        target = batch.x.float()
        for _ in range(steps):
            loss = (_reconstruction_error(generator, z, target, device, precision)
                    + prior_weight * (z.pow(2).mean(1) - 1).pow(2)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            errors.append(_reconstruction_error(generator, z, target, device, precision).cpu().numpy())
        latents.append(z.detach().cpu().numpy())
    return np.concatenate(latents).astype(np.float32), np.concatenate(errors)


def _reconstruction_error(generator, z, target, device, precision: str) -> torch.Tensor:
    with autocast(device, precision):
        x = generator(z)
    return (x.float() - target).pow(2).mean((1, 2, 3))


def image_grid(images: np.ndarray, columns: int) -> np.ndarray:
    """uint8 (n, S, S, 3) -> one uint8 mosaic with ``columns`` images per row (1-px gaps)."""
    n, s = len(images), images.shape[1]
    rows = -(-n // columns)
    grid = np.full((rows * (s + 1) + 1, columns * (s + 1) + 1, 3), 255, np.uint8)
    for k in range(n):  # at most a few hundred thumbnails: a loop is clearest here
        r, c = divmod(k, columns)
        grid[1 + r * (s + 1):1 + r * (s + 1) + s, 1 + c * (s + 1):1 + c * (s + 1) + s] = images[k]
    return grid
