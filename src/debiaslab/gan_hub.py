"""The public pretrained CelebA PGAN on torch.hub as the project's generator (``gan.source=hub``).

Loading from the hub downloads and runs the repository's code, so the repository is a constant here,
never a parameter: params.yaml may choose *whether* to use the hub generator, never *which code* runs.
The hub returns the repository's training harness (``ProgressiveGAN``, not an ``nn.Module``: networks,
optimisers, discriminator); only its generator network is kept, checked once, and frozen.

The ``celeba`` checkpoint was trained on CelebA cropped to rows 57-184, columns 25-152 of the aligned
images, the same crop as ``prepare.CROP_BOX``, so its faces are framed like the project's data.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import DebiaslabError

PGAN_HUB_REPO = "facebookresearch/pytorch_GAN_zoo:hub"
OFFLINE_HINT = "without internet use gan.source=train or gan.source=checkpoint"


class HubGenerator(nn.Module):
    """A frozen pretrained generator: z (n, latent_dim) -> images (n, 3, S, S) in [-1, 1], S = image_size.

    Parameters never require grad, but the output keeps its graph back to ``z``, which GAN inversion
    optimises. Clamping zeroes that gradient for the (few) pixels the network pushes beyond +-1.
    """

    def __init__(self, net: nn.Module, latent_dim: int, image_size: int, hub_size: int):
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.latent_dim = latent_dim
        self.image_size = image_size
        self.hub_size = hub_size  # the network's own output side (128 for the celeba PGAN)
        self.eval()

    def train(self, mode: bool = True) -> HubGenerator:
        # Frozen: a parent module's .train() must not switch the network to training behaviour.
        return super().train(False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected latents of shape (n, {self.latent_dim}), got {tuple(z.shape)}")
        x = self.net(z).float()  # float32 even under bf16 autocast, like gan.Generator
        if x.shape[-1] != self.image_size:
            # Antialiased bilinear is PIL's BILINEAR filter, which prepare.py uses to shrink real faces.
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                              align_corners=False, antialias=True)
        return x.clamp(-1.0, 1.0)


def _one_line(err: BaseException, limit: int = 300) -> str:
    text = " ".join(str(err).split())
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _generator_network(model) -> nn.Module | None:
    # avgG holds the moving-average weights, which the hub docs advise sampling from (test(getAvG=True));
    # on GPU both networks are wrapped in DataParallel, which would scatter over every visible GPU.
    for name in ("avgG", "netG"):
        net = getattr(model, name, None)
        if isinstance(net, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            net = net.module
        if isinstance(net, nn.Module):
            return net
    return None


def load_hub_generator(*, image_size: int, device: torch.device, repo: str = PGAN_HUB_REPO,
                       source: str = "github", model_name: str = "celeba") -> HubGenerator:
    """Load the hub PGAN (network on first use, then torch.hub's cache) and check what it produces.

    ``repo``/``source`` exist for tests (a local imitation of the hub repo); callers leave them alone.
    Every failure, from no network to an unexpected interface, is a one-line ``DebiaslabError``.
    """
    what = f"{repo} PGAN {model_name}"
    try:
        # trust_repo=True: the repository is fixed in code, and an interactive prompt would hang a stage.
        model = torch.hub.load(repo, "PGAN", model_name=model_name, pretrained=True,
                               useGPU=device.type == "cuda", source=source, trust_repo=True, verbose=False)
    except Exception as err:  # network, archive and the repository's own code can fail in any way
        raise DebiaslabError(f"gan.source=hub: could not load {what} ({_one_line(err)}); "
                             f"{OFFLINE_HINT}") from err

    bad = f"gan.source=hub: {what} has an unexpected interface"
    net = _generator_network(model)
    if net is None:
        raise DebiaslabError(f"{bad}: no generator network (avgG or netG) on {type(model).__name__}")
    config = getattr(model, "config", None)
    latent_dim = getattr(config, "noiseVectorDim", None)
    if not isinstance(latent_dim, int) or latent_dim <= 0:
        raise DebiaslabError(f"{bad}: config.noiseVectorDim is {latent_dim!r}, expected a positive int")
    full_dim = getattr(config, "latentVectorDim", latent_dim)
    if full_dim != latent_dim:
        raise DebiaslabError(f"{bad}: it is class-conditional (latent {full_dim} = {latent_dim} noise + "
                             f"{full_dim - latent_dim} class dims); only unconditional models are supported")

    net = net.to(device).eval()
    probe = torch.randn(2, latent_dim, generator=torch.Generator().manual_seed(0)).to(device)
    try:
        with torch.no_grad():
            out = net(probe)
    except Exception as err:
        raise DebiaslabError(f"{bad}: its generator rejects a (2, {latent_dim}) latent "
                             f"({_one_line(err)})") from err
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if (not isinstance(out, torch.Tensor) or not out.is_floating_point() or out.ndim != 4
            or out.shape[:2] != (2, 3) or out.shape[2] != out.shape[3]):
        raise DebiaslabError(f"{bad}: expected its generator to give (2, 3, S, S) float images for a "
                             f"(2, {latent_dim}) latent, got {shape}")
    if not torch.isfinite(out).all():
        raise DebiaslabError(f"{bad}: its generator gives non-finite values")
    return HubGenerator(net, latent_dim, image_size, hub_size=out.shape[-1])
