"""A native Progressive GAN generator that loads pytorch_GAN_zoo's release checkpoints safely.

What it implements: the generator of facebookresearch/pytorch_GAN_zoo (``GNet`` in
models/networks/progressive_conv_net.py, with the layers of models/networks/custom_layers.py), the
network that the GAN latent-space debiasing paper (Ramaswamy et al., CVPR 2021) sampled faces from.
Its release for 128-px CelebA faces is ``celebaCropped_s5_i83000-2b0acc76.pth`` (:data:`CELEBA_RELEASE_URL`).

Why native rather than torch.hub (the project's former ``gan.source: hub``, removed for this reason):

- the hub code no longer runs: ``ProgressiveGAN`` builds ``torch.optim.Adam(..., betas=[0, 0.99])``, which
  torch 2.14 rejects (``ValueError: betas must be either both floats or both Tensors``) before a single
  weight is loaded;
- a release file pickles the repository's ``models.utils.config.BaseConfig`` object next to the weights,
  and loading it with plain pickle (``torch.load(..., weights_only=False)``) would run whatever code the
  file names. Here the file is read with ``weights_only=True``, with that one class admitted as
  :class:`ReleaseConfigRecord`, a bag of attributes; anything else pickled in the file is refused.

The network, as the repository computes it (equalised learning rate on):

    z -> pixel norm -> linear (16 * depthScale0) -> leaky ReLU -> view (n, depthScale0, 4, 4) -> pixel norm
      -> 3x3 conv -> leaky ReLU -> pixel norm                                  (scale 0, 4 px)
      -> per added scale: 2x nearest upsampling, 2 x (3x3 conv -> leaky ReLU -> pixel norm)
      -> 1x1 to-RGB conv of the last scale; while a new scale fades in (alpha > 0) it is blended as
         alpha * upsample(to-RGB of the previous scale) + (1 - alpha) * it
      -> no final activation with the WGANGP (default) and Logistic losses; tanh with MSE and DCGAN.

Every equalised layer keeps weights ~ N(0, 1) and multiplies its *output, bias included*, by He's constant
sqrt(2 / fan_in) at run time. Submodules keep the repository's names (``formatLayer``, ``groupScale0``,
``scaleLayers``, ``toRGBLayers``, ``.module``) so the release's state dicts load with strict key checking.

:class:`PGANGenerator` returns the raw network output (not clamped, native size);
:class:`PretrainedGenerator` is what the pipeline samples from and inverts (``gan.source: pgan``):
frozen, float32, clamped to [-1, 1] and resized to ``prepare.image_size``.
:func:`download_release` fetches the CelebA release once, checking the hash its name carries.
"""

from __future__ import annotations

import _compat_pickle
import io
import math
import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoints import describe, first_line, load_module_weights, missing_keys, state_dict_problem
from .errors import DebiaslabError, stage_main

CELEBA_RELEASE = "celebaCropped_s5_i83000-2b0acc76.pth"
CELEBA_RELEASE_URL = f"https://dl.fbaipublicfiles.com/gan_zoo/PGAN/{CELEBA_RELEASE}"

# The one class a release pickles besides tensors and containers.
CONFIG_GLOBAL = "models.utils.config.BaseConfig"
REQUIRED_KEYS = ("config", "avgG", "netG")
GENERATORS = ("avgG", "netG")
# The repository's loss criteria and the activation each puts on the generator's last layer.
OUTPUT_ACTIVATIONS = {"WGANGP": None, "Logistic": None, "MSE": "tanh", "DCGAN": "tanh"}
PIXEL_NORM_EPS = 1e-8
LEGACY_PICKLES = 5  # pickles at the start of a legacy (non-zip) torch.save file


class ReleaseConfigRecord:
    """Stands in for ``models.utils.config.BaseConfig`` while unpickling a release: the unpickler only
    creates it and fills its ``__dict__`` with the pickled attributes. Deliberately no methods."""


# ---------------------------------------------------------------------------------------------------
# Reading the release file
# ---------------------------------------------------------------------------------------------------


def load_pgan_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """Read a pytorch_GAN_zoo PGAN checkpoint without running any pickled code.

    Returns ``(config, state_dicts)``: the release's config attributes as a plain dict, and the state
    dicts ``{"avgG": ..., "netG": ...}`` of the moving-average and the trained generator, both checked to
    fit the generator the config describes. Every problem with the file is a one-line DebiaslabError
    naming the file and what was expected.
    """
    label = str(path)
    content = _load_release(path, label)
    if not isinstance(content, dict):
        raise DebiaslabError(f"{label}: holds {describe(content)}, expected a dict with keys "
                             f"{', '.join(REQUIRED_KEYS)} (a pytorch_GAN_zoo PGAN checkpoint)")
    missing = missing_keys(content, REQUIRED_KEYS)
    if missing:
        raise DebiaslabError(f"{label}: not a pytorch_GAN_zoo PGAN checkpoint: no {', '.join(missing)} "
                             f"(it holds {describe(content)})")
    config = _config_dict(content["config"], label)
    pgan_options(config, label)  # every field the generator needs, with its type
    states = {which: content[which] for which in GENERATORS}
    _check_state_dicts(config, states, label)
    return config, states


def _load_release(path: str | Path, label: str):
    """``torch.load(weights_only=True)`` admitting only the release's config class; one-line errors."""
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(
                [(ReleaseConfigRecord, CONFIG_GLOBAL)]):
            # a bare pickle (not torch.save) warns about its protocol before it is refused
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        named = re.search(r"GLOBAL (\S+)", str(err))  # torch's own naming, should the scan miss it
        foreign = first_foreign_global(path) or (named[1] if named else None)
        if foreign is None:
            reason = _unpickling_reason(err)
            raise DebiaslabError(f"{label}: not a readable PGAN checkpoint ({reason})") from None
        raise DebiaslabError(f"{label}: refused: the file pickles {foreign}, which is neither a tensor, a "
                             f"plain container nor the release's {CONFIG_GLOBAL} (only weights are loaded; "
                             "never load it with weights_only=False)") from None
    except FileNotFoundError:
        raise DebiaslabError(f"{label}: PGAN checkpoint not found") from None
    except OSError as err:
        raise DebiaslabError(f"{label}: cannot read the PGAN checkpoint ({err.strerror or err})") from None
    except EOFError:
        raise DebiaslabError(f"{label}: not a readable PGAN checkpoint (the file ends early: truncated?)") \
            from None
    except Exception as err:  # noqa: BLE001 - zip, storage and decoding errors: all a damaged file
        raise DebiaslabError(f"{label}: not a readable PGAN checkpoint (not a torch.save file, or a damaged "
                             f"one: {type(err).__name__}: {first_line(err)})") from None


def _unpickling_reason(err: BaseException) -> str:
    """The unpickler's own reason, without PyTorch's paragraphs of advice around it."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    kept = [ln for ln in lines if not ln.startswith(("Weights only load failed", "Please file",
                                                     "Check the documentation", "(1)", "(2)"))]
    return first_line(kept[0] if kept else err)


def first_foreign_global(path: str | Path) -> str | None:
    """The first class or function the file's pickles name that weights-only loading of a release does
    not allow ('builtins.print', 'posix.system'), or None. Reads opcodes only; nothing is imported or run."""
    allowed = _allowed_globals()
    for name in _pickled_globals(path):
        if name not in allowed:
            return name
    return None


def _allowed_globals() -> set[str]:
    """What ``torch.load(weights_only=True)`` allows by default, plus the release's config class."""
    from torch import _weights_only_unpickler  # private, but what torch.serialization itself consults

    return set(_weights_only_unpickler._get_allowed_globals()) | {CONFIG_GLOBAL}


def _pickled_globals(path: str | Path) -> Iterator[str]:
    """The globals named by every pickle in the file: data.pkl of a zip checkpoint, or the pickles one
    after another at the start of a legacy checkpoint (magic number, protocol, system info, the object,
    its storage keys; raw tensor bytes follow) or of a bare pickle file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return
    if zipfile.is_zipfile(io.BytesIO(data)):
        yield from _globals_in_archive(data)
        return
    stream = io.BytesIO(data)
    for _ in range(LEGACY_PICKLES):
        start = stream.tell()
        yield from _globals_in_pickle(stream)
        if stream.tell() in (start, len(data)):
            return


def _globals_in_archive(data: bytes) -> list[str]:
    """The globals named by the pickles (data.pkl) of a zip-format torch.save file."""
    found: list[str] = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for name in archive.namelist():
                if name.endswith(".pkl"):
                    found += _globals_in_pickle(io.BytesIO(archive.read(name)))
    except Exception:  # noqa: BLE001 - a damaged archive: name what was found before the damage
        pass
    return found


def _globals_in_pickle(stream: io.BytesIO) -> list[str]:
    """'module.name' for each GLOBAL / STACK_GLOBAL of the pickle at the stream's position, which ends
    after its STOP (or at the first byte that is not an opcode)."""
    found: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # opcodes read from a damaged stream may warn while decoding
        try:
            _collect_globals(pickletools.genops(stream), found)
        except Exception:  # noqa: BLE001 - the pickle ends early or raw data follows: nothing more to name
            pass
    return found


def _collect_globals(opcodes, found: list[str]) -> None:
    """Append the globals the opcodes name to ``found``. STACK_GLOBAL takes its two names from the
    stack: the strings pushed, or fetched from the memo, just before it."""
    pushed: list[Any] = []
    memo: dict[int, Any] = {}
    for opcode, arg, _ in opcodes:
        name = opcode.name
        if name in ("GLOBAL", "INST"):
            found.append(_python3_name(*arg.split(" ", 1)))
        elif name == "STACK_GLOBAL" and len(pushed) >= 2:
            found.append(f"{pushed[-2]}.{pushed[-1]}")
        if name == "MEMOIZE" and pushed:
            memo[len(memo)] = pushed[-1]
        elif name in ("PUT", "BINPUT", "LONG_BINPUT") and pushed:
            memo[int(arg)] = pushed[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            pushed.append(memo.get(int(arg)))
        elif name != "FRAME":
            pushed.append(arg if isinstance(arg, str) and "UNICODE" in name else None)


def _python3_name(module: str, name: str) -> str:
    """A protocol 0-2 pickle names Python 2 modules ('__builtin__ print'); unpicklers map them to
    Python 3's ('builtins.print'), and so does this."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    else:
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f"{module}.{name}"


def _config_dict(config, label: str) -> dict[str, Any]:
    """The release's config record (or an already plain dict) as a dict of its attributes."""
    if isinstance(config, ReleaseConfigRecord):
        return dict(vars(config))
    if isinstance(config, dict) and all(isinstance(k, str) for k in config):
        return dict(config)
    raise DebiaslabError(f"{label}: config is {describe(config)}, expected the release's {CONFIG_GLOBAL} "
                         "record (or a dict of its attributes)")


def _check_state_dicts(config: Mapping[str, Any], states: dict[str, Any], label: str) -> None:
    """Each generator state dict has exactly the keys and shapes of the network ``config`` describes,
    and finite float tensors. The reference network is built on the meta device: no memory, no init."""
    with torch.device("meta"):
        reference = PGANGenerator(config)
    summary = (f"depthScale0={config['depthScale0']}, depthOtherScales={list(config['depthOtherScales'])}, "
               f"latentVectorDim={config['latentVectorDim']}, dimOutput={config['dimOutput']}")
    for which, state in states.items():
        problem = state_dict_problem(reference, state)
        if problem is None:
            problem = _bad_values(state)
        if problem is not None:
            raise DebiaslabError(f"{label}: {which} does not fit the generator its config describes "
                                 f"({summary}): {problem}")


def _bad_values(state: Mapping[str, torch.Tensor]) -> str | None:
    for key, tensor in state.items():
        if not tensor.is_floating_point():
            return f"{key} is a {tensor.dtype} tensor, expected floating point weights"
        if not torch.isfinite(tensor).all():
            return f"{key} has non-finite values"
    return None


# ---------------------------------------------------------------------------------------------------
# The generator's options, from the release's config
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PGANOptions:
    """The config fields that shape GNet, named as in the repository's config (see pgan_options)."""

    depth_scale0: int
    depth_other_scales: tuple[int, ...]
    latent_dim: int
    dim_output: int
    equalized_lr: bool
    init_bias_to_zero: bool
    alpha: float
    leaky_relu_leak: float
    output_activation: str | None


def pgan_options(config: Mapping[str, Any], label: str = "PGAN config") -> PGANOptions:
    """Check and collect what GNet is built from, as ProgressiveGAN.getNetG passes it on.

    Required: depthScale0, depthOtherScales, latentVectorDim, dimOutput, equalizedlR, initBiasToZero and
    alpha. leakyReluLeak, perChannelNormalization and lossCriterion fall back to ProgressiveGAN's defaults
    (0.2, True, 'WGANGP'), as the repository's loading overlays a file's config on them.
    """
    missing = [k for k in ("depthScale0", "depthOtherScales", "latentVectorDim", "dimOutput", "equalizedlR",
                           "initBiasToZero", "alpha") if k not in config]
    if missing:
        raise DebiaslabError(f"{label}: config lacks {', '.join(missing)}")
    scales = config["depthOtherScales"]
    if not isinstance(scales, (list, tuple)) or not all(_is_positive_int(d) for d in scales):
        raise DebiaslabError(f"{label}: config.depthOtherScales is {scales!r}, expected a list of positive "
                             "ints (the channels of each added scale)")
    loss = config.get("lossCriterion", "WGANGP")
    if loss not in OUTPUT_ACTIVATIONS:
        raise DebiaslabError(f"{label}: config.lossCriterion is {loss!r}, expected one of "
                             f"{', '.join(OUTPUT_ACTIVATIONS)}")
    if config.get("perChannelNormalization", True) is not True:
        # GNet.forward pixel-normalises the 4x4 map unconditionally: without the layer it cannot run.
        raise DebiaslabError(f"{label}: config.perChannelNormalization is "
                             f"{config['perChannelNormalization']!r}; the repository's generator only runs "
                             "with pixel normalisation (True)")
    return PGANOptions(
        depth_scale0=_field(config, "depthScale0", _is_positive_int, "a positive int", label),
        depth_other_scales=tuple(scales),
        latent_dim=_field(config, "latentVectorDim", _is_positive_int, "a positive int", label),
        dim_output=_field(config, "dimOutput", _is_positive_int, "a positive int", label),
        equalized_lr=_field(config, "equalizedlR", _is_bool, "True or False", label),
        init_bias_to_zero=_field(config, "initBiasToZero", _is_bool, "True or False", label),
        alpha=float(_field(config, "alpha", _is_fraction, "a number in [0, 1]", label)),
        leaky_relu_leak=float(_field(config, "leakyReluLeak", _is_number, "a finite number", label, 0.2)),
        output_activation=OUTPUT_ACTIVATIONS[loss],
    )


def _field(config, key, valid, expected: str, label: str, default=None):
    value = config.get(key, default)
    if not valid(value):
        raise DebiaslabError(f"{label}: config.{key} is {value!r} ({type(value).__name__}), "
                             f"expected {expected}")
    return value


def _is_bool(value) -> bool:
    return isinstance(value, bool)


def _is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_fraction(value) -> bool:
    return _is_number(value) and 0.0 <= value <= 1.0


# ---------------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------------


def pixel_norm(x: torch.Tensor) -> torch.Tensor:
    """Scale each position's feature vector (dim 1) to unit root mean square, as NormalizationLayer."""
    return x * (x.pow(2).mean(dim=1, keepdim=True) + PIXEL_NORM_EPS).rsqrt()


def upscale2x(x: torch.Tensor) -> torch.Tensor:
    """Double height and width by repeating each pixel (nearest neighbour), as Upscale2d."""
    return x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


class EqualizedLayer(nn.Module):
    """A conv or linear layer with the equalised learning rate of ConstrainedLayer.

    Weights are stored ~ N(0, 1) and the layer's output, bias included, is multiplied by He's constant
    sqrt(2 / fan_in) at run time, so every layer learns at the same pace. The wrapped layer is called
    ``module`` so state-dict keys read ``<name>.module.weight`` as in the release.
    """

    def __init__(self, layer: nn.Conv2d | nn.Linear, *, equalized: bool, init_bias_to_zero: bool):
        super().__init__()
        self.module = layer
        if init_bias_to_zero:
            nn.init.zeros_(layer.bias)
        self.scale = None
        if equalized:
            nn.init.normal_(layer.weight, 0.0, 1.0)
            fan_in = math.prod(layer.weight.shape[1:])
            self.scale = math.sqrt(2.0 / fan_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.module(x)
        return x if self.scale is None else x * self.scale


class PGANGenerator(nn.Module):
    """pytorch_GAN_zoo's PGAN generator (GNet): z (n, latent_dim) -> images (n, dimOutput, S, S).

    ``config`` is the release's config (a dict, see load_pgan_checkpoint, or PGANOptions); S, the native
    side ``image_size``, is 4 * 2 ** len(depthOtherScales). The output is the raw network output.
    """

    def __init__(self, config: Mapping[str, Any] | PGANOptions):
        super().__init__()
        opts = config if isinstance(config, PGANOptions) else pgan_options(config)
        self.options = opts
        # the release's own fields, for a checkpoint that rebuilds this network (train_gan's output)
        self.release_config = None if isinstance(config, PGANOptions) else plain_config(config)
        self.latent_dim = opts.latent_dim
        self.image_size = 4 * 2 ** len(opts.depth_other_scales)
        # The repository only sets alpha on a network with added scales (ProgressiveGAN.getNetG).
        self.alpha = opts.alpha if opts.depth_other_scales else 0.0
        self.activation = nn.LeakyReLU(opts.leaky_relu_leak)

        # Registered in the repository's order, so state_dict() lists keys as the release does.
        self.scaleLayers = nn.ModuleList()
        self.toRGBLayers = nn.ModuleList([self._conv(opts.depth_scale0, opts.dim_output, 1)])
        self.formatLayer = EqualizedLayer(nn.Linear(opts.latent_dim, 16 * opts.depth_scale0),
                                          equalized=opts.equalized_lr,
                                          init_bias_to_zero=opts.init_bias_to_zero)
        self.groupScale0 = nn.ModuleList([self._conv(opts.depth_scale0, opts.depth_scale0, 3)])
        depths = (opts.depth_scale0, *opts.depth_other_scales)
        for previous, depth in zip(depths[:-1], depths[1:], strict=True):
            convs = [self._conv(previous, depth, 3), self._conv(depth, depth, 3)]
            self.scaleLayers.append(nn.ModuleList(convs))
            self.toRGBLayers.append(self._conv(depth, opts.dim_output, 1))

    def _conv(self, channels_in: int, channels_out: int, kernel: int) -> EqualizedLayer:
        conv = nn.Conv2d(channels_in, channels_out, kernel, padding=kernel // 2)
        return EqualizedLayer(conv, equalized=self.options.equalized_lr,
                              init_bias_to_zero=self.options.init_bias_to_zero)

    def _block(self, layers: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        """Conv -> leaky ReLU -> pixel norm, for each conv of one scale."""
        for conv in layers:
            x = pixel_norm(self.activation(conv(x)))
        return x

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected latents of shape (n, {self.latent_dim}), got {tuple(z.shape)}")
        x = self.activation(self.formatLayer(pixel_norm(z)))
        x = pixel_norm(x.view(z.shape[0], -1, 4, 4))
        x = self._block(self.groupScale0, x)
        lower = None
        for index, layers in enumerate(self.scaleLayers):
            if self.alpha > 0 and index == len(self.scaleLayers) - 1:
                # the previous scale's image, while the last scale fades in
                lower = upscale2x(self.toRGBLayers[-2](x))
            x = self._block(layers, upscale2x(x))
        x = self.toRGBLayers[-1](x)
        if lower is not None:
            x = self.alpha * lower + (1.0 - self.alpha) * x
        if self.options.output_activation == "tanh":
            x = torch.tanh(x)
        return x


def load_pgan_generator(path: str | Path, *, which: str = "avgG",
                        device: str | torch.device = "cpu") -> PGANGenerator:
    """The release's generator, ready to sample from or to invert: eval mode, parameters frozen, on
    ``device``. ``which`` is 'avgG' (the moving average the repository advises sampling from) or 'netG'.

    Gradients still flow back to z, which GAN inversion optimises. Class-conditional releases (latent =
    noise + class code) are refused, since their latent is not a plain Gaussian vector.
    """
    if which not in GENERATORS:
        raise DebiaslabError(f"PGAN generator: which={which!r}, expected one of {', '.join(GENERATORS)}")
    config, states = load_pgan_checkpoint(path)
    noise_dim = config.get("noiseVectorDim", config["latentVectorDim"])
    if noise_dim != config["latentVectorDim"]:
        raise DebiaslabError(f"{path}: a class-conditional PGAN (latent {config['latentVectorDim']} = "
                             f"{noise_dim} noise + class dims); only unconditional models are supported")
    generator = PGANGenerator(config)
    load_module_weights(generator, states[which], str(path), mismatch=f"{which} does not fit the generator")
    return generator.to(device).eval().requires_grad_(False)


class PretrainedGenerator(nn.Module):
    """A frozen pretrained generator as the pipeline uses it: z (n, latent_dim) -> images
    (n, 3, S, S) in [-1, 1], S = image_size.

    Parameters never require grad, but the output keeps its graph back to ``z``, which GAN inversion
    optimises. Clamping zeroes that gradient for the (few) pixels the network pushes beyond ±1.
    """

    def __init__(self, net: PGANGenerator, image_size: int):
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.latent_dim = net.latent_dim
        self.image_size = image_size
        self.native_size = net.image_size  # 128 for the CelebA release
        self.eval()

    def train(self, mode: bool = True) -> PretrainedGenerator:
        # Frozen: a parent module's .train() must not switch the network to training behaviour.
        return super().train(False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.net(z).float()  # float32 even under bf16 autocast, like gan.Generator
        if x.shape[-1] != self.image_size:
            # Antialiased bilinear is PIL's BILINEAR filter, which prepare.py uses to shrink real faces.
            x = torch.nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                                                align_corners=False, antialias=True)
        return x.clamp(-1.0, 1.0)


def plain_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The release config's fields that a weights-only checkpoint can hold (numbers, strings, lists)."""
    plain = (bool, int, float, str, type(None))
    def is_plain(v) -> bool:
        return isinstance(v, plain) or (isinstance(v, (list, tuple)) and all(isinstance(x, plain) for x in v))

    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items() if is_plain(v)}


def download_release(dest: str | Path, *, url: str = CELEBA_RELEASE_URL, progress: bool = True) -> Path:
    """Fetch a release file once to ``dest`` (a file inside the repository), checking the SHA-256
    prefix its name carries (``-2b0acc76.pth``, torch.hub's convention); a mismatch or a network
    failure leaves nothing at ``dest``. ``url`` exists for tests (a file:// URL)."""
    from torch.hub import download_url_to_file

    dest = Path(dest)
    if dest.is_file():
        return dest
    name = url.rsplit("/", 1)[-1]
    prefix = name.rsplit("-", 1)[-1].split(".")[0] if "-" in name else None
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        download_url_to_file(url, str(dest), hash_prefix=prefix, progress=progress)
    except Exception as err:  # network errors and torch.hub's RuntimeError on a hash mismatch
        dest.unlink(missing_ok=True)
        reason = " ".join(str(err).split())[:200]
        raise DebiaslabError(f"{url}: could not download to {dest} ({reason})") from None
    return dest


RELEASE_DIR = Path("models/pgan")


@stage_main("pgan")
def main(argv: list[str] | None = None) -> None:
    """``python -m debiaslab.pgan download``: the CelebA release into models/pgan/ (once)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m debiaslab.pgan",
                                 description=f"Download the CelebA PGAN release ({CELEBA_RELEASE}) into "
                                             f"{RELEASE_DIR}/, checking its hash; then set gan.source: pgan "
                                             f"and gan.checkpoint: {RELEASE_DIR}/{CELEBA_RELEASE}.")
    ap.add_argument("command", choices=["download"])
    ap.parse_args(argv)
    path = download_release(RELEASE_DIR / CELEBA_RELEASE)
    load_pgan_checkpoint(path)  # refuses a file that is not a release before anyone samples from it
    print(f"{path}: ready (gan.source: pgan, gan.checkpoint: {path})")


if __name__ == "__main__":
    main()
