"""``params.yaml``, grouped per stage, validated on load.

Each group is a frozen dataclass; :func:`load_params` reads only the groups a stage asks for and
checks every key and type, so a typo fails at once with a one-line message such as
``params.yaml: train.epoch: unknown key (expected one of: arch, batch_size, ...)``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from .errors import DebiaslabError

# The 40 attribute names of CelebA's list_attr_celeba.txt, in file order.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
    "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair "
    "Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()


@dataclass(frozen=True)
class DataParams:
    root: str = "data/synthfaces"  # a CelebA-format folder: SynthFaces output or real CelebA


@dataclass(frozen=True)
class AttributeParams:
    targets: list[str] = field(default_factory=lambda: ["Smiling"])
    protected: list[str] = field(default_factory=lambda: ["Eyeglasses"])

    def __post_init__(self) -> None:
        for key in ("targets", "protected"):
            names = getattr(self, key)
            if not names:
                raise ValueError(f"{key}: expected at least one attribute name")
            check_attribute_names(names, CELEBA_ATTRIBUTES, key)
        both = sorted(set(self.targets) & set(self.protected))
        if both:
            raise ValueError(f"{both[0]!r} is both a target and a protected attribute")


@dataclass(frozen=True)
class Correlation:
    protected: str
    skew: float  # P(protected=1 | target=1) = P(protected=0 | target=0)

    def __post_init__(self) -> None:
        if not 0.0 <= self.skew <= 1.0:
            raise ValueError(f"skew: expected a probability in [0, 1], got {self.skew}")


@dataclass(frozen=True)
class SynthesizeParams:
    n_images: int = 20000
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])  # train/val/test shares
    seed: int = 0
    base_rate: float = 0.5  # P(attribute=1) for every attribute not skewed by a correlation
    correlations: dict[str, Correlation] = field(default_factory=dict)  # target -> (protected, skew)
    smile_depth: float = 2.5  # px (at 178x218) a smile bends the mouth: how salient Smiling is
    mouth_jitter: float = 1.5  # label-free mouth bend, U(-j, j) px; overlap with smiles = ambiguity
    noise_std: float = 8.0  # per-pixel Gaussian noise, in uint8 units
    jpeg_quality: int = 90
    workers: int = 2

    def __post_init__(self) -> None:
        if self.n_images < 3:
            raise ValueError(f"n_images: expected at least 3, got {self.n_images}")
        if len(self.split) != 3 or min(self.split) <= 0 or abs(sum(self.split) - 1) > 1e-6:
            raise ValueError(f"split: expected three positive shares summing to 1, got {self.split}")
        if not 0.0 < self.base_rate < 1.0:
            raise ValueError(f"base_rate: expected a probability in (0, 1), got {self.base_rate}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality: expected 1..100, got {self.jpeg_quality}")


@dataclass(frozen=True)
class PrepareParams:
    image_size: int = 32  # side of the packed square images (the crop is 128x128)
    workers: int = 2

    def __post_init__(self) -> None:
        if not 8 <= self.image_size <= 128:
            raise ValueError(f"image_size: expected 8..128, got {self.image_size}")


@dataclass(frozen=True)
class TrainParams:
    arch: str = "small_cnn"
    width: int = 16  # channels of the first block (small_cnn only)
    weights: str | None = None  # local state-dict file for a ResNet backbone; never downloaded
    epochs: int = 8
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    hflip: bool = True
    precision: Literal["fp32", "bf16"] = "bf16"  # bf16 autocast (CPU with AVX512-BF16, or CUDA)
    channels_last: bool = True
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 0
    nproc_per_node: int = 1  # > 1: data-parallel training under torchrun (one process per GPU)

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "width", "nproc_per_node"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: expected a positive integer, got {getattr(self, key)}")
        if self.lr <= 0:
            raise ValueError(f"lr: expected a positive number, got {self.lr}")


@dataclass(frozen=True)
class EvaluateParams:
    n_boot: int = 500  # bootstrap resamples of the test set
    seed: int = 0
    kl_bins: int = 50

    def __post_init__(self) -> None:
        if self.n_boot < 1 or self.kl_bins < 2:
            raise ValueError("n_boot must be >= 1 and kl_bins >= 2")


@dataclass(frozen=True)
class MultilabelParams:
    methods: list[str] = field(default_factory=lambda: ["erm", "adversarial"])  # one model each


@dataclass(frozen=True)
class ColoredDigitsParams:
    severities: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0, 5.0])  # % conflicting
    n_train: int = 30000
    n_valid: int = 2000
    n_test: int = 10000
    seed: int = 0
    workers: int = 2


@dataclass(frozen=True)
class BiasEnsembleParams:
    """Lee et al. 2023: M GCE models, each votes aligned where p(true class) > tau."""

    n_models: int = 5
    epochs: int = 8  # about the original 1,000 iterations at 30,000 samples, batch 256
    tau: float = 0.99
    min_votes: int = 3
    q: float = 0.7
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.min_votes <= self.n_models:
            raise ValueError(f"min_votes: expected 1..n_models ({self.n_models}), got {self.min_votes}")
        if not 0 < self.tau < 1:
            raise ValueError(f"tau: expected a probability in (0, 1), got {self.tau}")


@dataclass(frozen=True)
class FacesBiasParams:
    """SynthFaces as a BFFHQ-like benchmark: one binary target, one binary bias attribute."""

    target: str = "Smiling"
    bias: str = "Eyeglasses"

    def __post_init__(self) -> None:
        check_attribute_names([self.target, self.bias], CELEBA_ATTRIBUTES, "target/bias")


def method_hparams(hparams: dict[str, dict], method: str) -> dict | None:
    """A method's entry in the ``hparams`` group; BiasEnsemble variants share their base's."""
    return hparams.get(method, hparams.get(method.removesuffix("_be")))


@dataclass(frozen=True)
class LeakageParams:
    """The attacker of Wang et al. 2019. Reference: 100 epochs, lr 5e-5, batch 128, 5 rounds;
    the defaults here reach the same sanity values (0.50 on independent labels, 1.0 on a copy of
    the attribute) in a fraction of the time."""

    rounds: int = 3
    p_grid: list[float] = field(default_factory=lambda: [0.0, 0.05, 0.1, 0.2, 0.3, 0.5])
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-5
    max_rows: int = 8000  # attacker rows per split at most (balanced subsamples of these)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.epochs < 1 or self.max_rows < 20:
            raise ValueError("rounds and epochs must be >= 1, max_rows >= 20")
        if not self.p_grid or any(not 0 <= p <= 0.5 for p in self.p_grid):
            raise ValueError(f"p_grid: expected flip probabilities in [0, 0.5], got {self.p_grid}")


@dataclass(frozen=True)
class GanParams:
    """The generator of the latent-space method: a DCGAN trained here, a saved one, or the hub PGAN."""

    source: Literal["train", "checkpoint", "hub"] = "train"
    checkpoint: str | None = None  # source=checkpoint: a generator.pt written by train_gan
    latent_dim: int = 64
    g_width: int = 16  # generator channels at the last level; 8x at the 4x4 base
    d_width: int = 16
    epochs: int = 12
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    ema_decay: float = 0.999  # averaged generator: smoother samples and latent space
    hflip: bool = True
    precision: Literal["fp32", "bf16"] = "bf16"
    device: str = "auto"
    sample_every: int = 4  # epochs between sample grids in reports/gan/
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("latent_dim", "g_width", "d_width", "epochs", "batch_size", "sample_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: expected a positive integer, got {getattr(self, key)}")
        if self.source == "checkpoint" and not self.checkpoint:
            raise ValueError("checkpoint: gan.source=checkpoint needs a file path here")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay: expected a value in [0, 1), got {self.ema_decay}")


@dataclass(frozen=True)
class LatentsParams:
    """Generated images G(z): the first ``latent_edit.n_fit`` fit the SVMs, the rest get z'."""

    n: int = 20000
    seed: int = 0
    batch_size: int = 512

    def __post_init__(self) -> None:
        if self.n < 20 or self.batch_size < 1:
            raise ValueError(f"n: expected at least 20 latents, got {self.n}")


@dataclass(frozen=True)
class LatentEditParams:
    variant: Literal["standard", "domain_dependent", "multi", "reflect", "project"] = "standard"
    n_fit: int = 10000  # latents the SVMs see (the paper: 10,000 of 175,000)
    C: float = 1.0
    holdout: float = 0.2  # share of the n_fit latents that measures the SVMs' accuracy
    max_cos: float = 0.95  # refuse edits when |cos(w_t, w_g)| is above this
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_fit < 10 or not 0 < self.holdout < 1 or not 0 < self.max_cos < 1 or self.C <= 0:
            raise ValueError("n_fit >= 10, 0 < holdout < 1, 0 < max_cos < 1 and C > 0 expected")


@dataclass(frozen=True)
class OracleParams:
    """Unbiased judge for SynthFaces (set enabled: false for real CelebA: there is no oracle)."""

    enabled: bool = True
    n_images: int = 8000
    epochs: int = 6
    seed: int = 0


@dataclass(frozen=True)
class InversionParams:
    """GAN inversion by optimisation: real training images -> latents -> z' -> pairs."""

    n_images: int = 2000
    steps: int = 150
    lr: float = 0.05
    prior_weight: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_images < 1 or self.steps < 1 or self.lr <= 0 or self.prior_weight < 0:
            raise ValueError("n_images, steps >= 1, lr > 0 and prior_weight >= 0 expected")


@dataclass(frozen=True)
class FairCellsParams:
    """Generated images per (target, protected) cell for Dr-Fairness."""

    per_cell: int = 2000
    val_per_cell: int = 200  # held out for the sampler's probe batches
    seed: int = 0

    def __post_init__(self) -> None:
        if self.per_cell < 1 or self.val_per_cell < 1:
            raise ValueError("per_cell and val_per_cell: expected positive integers")


GROUPS: dict[str, Any] = {
    "data": DataParams,
    "attributes": AttributeParams,
    "synthesize": SynthesizeParams,
    "prepare": PrepareParams,
    "train": TrainParams,
    "evaluate": EvaluateParams,
    "multilabel": MultilabelParams,
    "hparams": dict[str, dict[str, float | str]],  # per-method hyperparameters, checked by each method
    "leakage": LeakageParams,
    "colored_digits": ColoredDigitsParams,
    "bias_ensemble": BiasEnsembleParams,
    "debias_train": TrainParams,  # the `train` schema, for the Colored Digits models
    "faces_bias": FacesBiasParams,
    "faces_debias_train": TrainParams,
    "faces_bias_ensemble": BiasEnsembleParams,
    "gan": GanParams,
    "latents": LatentsParams,
    "latent_edit": LatentEditParams,
    "oracle": OracleParams,
    "inversion": InversionParams,
    "fair_cells": FairCellsParams,
}

T = TypeVar("T")


def check_attribute_names(names: list[str], valid: typing.Sequence[str], key: str) -> None:
    for name in names:
        if name not in valid:
            raise ValueError(f"{key}: unknown attribute {name!r} (valid: {', '.join(valid)})")


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(tp)))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping with keys " + ", ".join(f.name for f in dataclasses.fields(tp))
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            type(None): "null"}.get(tp, str(tp))


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the type hint ``tp``; return it converted (ints to floats, etc.)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    wrong = DebiaslabError(f"{where}: expected {_describe(tp)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise wrong
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return _convert(value, arg, where)
            except DebiaslabError:
                continue
        raise wrong
    if origin is list:
        if not isinstance(value, list):
            raise wrong
        return [_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise wrong
        return {_convert(k, args[0], where): _convert(v, args[1], f"{where}.{k}")
                for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return parse_group(tp, value, where)
    if tp is type(None):
        if value is not None:
            raise wrong
        return None
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
        try:
            return float(value)
        except ValueError:
            raise wrong from None
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise wrong
    return value


def parse_group(cls: type[T], raw: Any, where: str) -> T:
    """Build the dataclass ``cls`` from the mapping ``raw``; every problem names ``where.key``."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise DebiaslabError(f"{where}: expected a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            raise DebiaslabError(
                f"{where}.{key}: unknown key (expected one of: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    values = {k: _convert(v, hints[k], f"{where}.{k}") for k, v in raw.items()}
    try:
        return cls(**values)
    except ValueError as err:
        raise DebiaslabError(f"{where}.{err}") from None


def read_params_file(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise DebiaslabError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise DebiaslabError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise DebiaslabError(f"{path}: expected a mapping of parameter groups")
    return raw


def load_params(*groups: str, path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read and validate the named groups of ``path``; unknown top-level groups are errors too."""
    raw = read_params_file(path)
    for name in raw:
        if name not in GROUPS:
            raise DebiaslabError(
                f"{path}: {name}: unknown parameter group (expected one of: {', '.join(GROUPS)})")
    out = {}
    for name in groups:
        try:
            schema = GROUPS[name]
            out[name] = (parse_group(schema, raw.get(name), name) if dataclasses.is_dataclass(schema)
                         else _convert(raw.get(name) or {}, schema, name))
        except DebiaslabError as err:
            raise DebiaslabError(f"{path}: {err}") from None
    return out


def validate_all(path: str | Path = "params.yaml") -> dict[str, Any]:
    return load_params(*GROUPS, path=path)


def merge_overrides(base: dict, overrides: dict) -> dict:
    """Deep-merge ``overrides`` into a copy of ``base`` (a profile such as ``profiles/tiny.yaml``)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_overrides(out[key], value)
        else:
            out[key] = value
    return out
