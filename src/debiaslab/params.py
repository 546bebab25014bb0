"""``params.yaml``, grouped per stage, validated on load.

Each group is a frozen dataclass; :func:`load_params` reads only the groups a stage asks for and
checks every key, type and range, so a typo fails at once with a one-line message such as
``params.yaml: train.epoch: unknown key (expected one of: arch, batch_size, ...)``.

Numbers must be finite; counts that size an allocation have generous upper limits (a typo with
extra zeros fails here, not as a MemoryError an hour later). The ``hparams`` group is checked
against :data:`METHOD_HPARAMS`, the defaults each method module declares. Imports no torch or NumPy: the
``check_params`` guard validates params.yaml with this module before every stage.
"""

from __future__ import annotations

import ast
import dataclasses
import math
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

# Upper limits, generous for real use, that stop a mistyped value before it sizes an allocation.
MAX_SEED = 2**32 - 1  # NumPy's global seed and scikit-learn's random_state are 32-bit
MAX_IMAGES = 10_000_000  # images rendered, generated or drawn (CelebA has 202,599)
MAX_BOOT = 10_000  # bootstrap resamples: an (n_boot, n_test) float64 matrix, 1.6 GB at 20,000
MAX_BINS = 1_000  # KL histogram bins: an (n_test, bins) one-hot matrix
MAX_WIDTH = 1_024  # channels of a network's narrowest block (the GAN's base has 8x as many)
MAX_LATENT_DIM = 4_096  # the CelebA PGAN's latents have 512
MAX_WORKERS = 1_024  # processes of a process pool, or of torchrun on one node

METHODS_DIR = Path(__file__).parent / "methods"


def declared_methods(methods_dir: Path = METHODS_DIR) -> dict[str, dict[str, Any]]:
    """{name: its module's declarations} of every method module ``methods/NAME.py``, read from
    the source without importing it (so without torch): the literal ``HPARAMS`` (hyperparameter
    defaults, required) and ``MULTILABEL`` (trains on one 0/1 column per label; default False).
    A module is a method when it assigns HPARAMS; helpers shared by methods do not."""
    found = {}
    for path in sorted(methods_dir.glob("*.py")):
        values = {}
        for node in ast.parse(path.read_text()).body:
            target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else (
                node.target if isinstance(node, ast.AnnAssign) and node.value is not None else None)
            if isinstance(target, ast.Name) and target.id in ("HPARAMS", "MULTILABEL"):
                values[target.id] = ast.literal_eval(node.value)
        if isinstance(values.get("HPARAMS"), dict):
            found[path.stem] = {"hparams": values["HPARAMS"],
                                "multilabel": bool(values.get("MULTILABEL", False))}
    return found


_DECLARED = declared_methods()
# Each method's hyperparameters and their defaults, as its module declares them: what the
# `hparams` group of params.yaml is checked against at load time.
METHOD_HPARAMS: dict[str, dict[str, float | int | str]] = {
    name: d["hparams"] for name, d in _DECLARED.items()}
MULTILABEL_METHODS = tuple(n for n, d in _DECLARED.items() if d["multilabel"])  # 0/1 column per label
FAIRNESS = ("eo", "eqopp", "dp")  # equalised odds, equal opportunity, demographic parity


@dataclass(frozen=True)
class Bounds:
    """The range a number must lie in; ``None`` is unbounded on that side."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo itself is excluded
    hi_open: bool = False
    integer: bool = False  # for the message only: the type is checked on load

    def contains(self, value: float) -> bool:  # false for NaN
        above = self.lo is None or (value > self.lo if self.lo_open else value >= self.lo)
        return above and (self.hi is None or (value < self.hi if self.hi_open else value <= self.hi))

    def describe(self) -> str:
        if self.integer:
            if self.hi is None:
                return "a positive integer" if self.lo == 1 else f"an integer >= {self.lo}"
            return f"an integer in {self.lo}..{self.hi}"
        if self.hi is None:
            return "a positive number" if self.lo == 0 and self.lo_open else \
                f"a number {'>' if self.lo_open else '>='} {self.lo:g}"
        return (f"a number in {'(' if self.lo_open else '['}{self.lo:g}, "
                f"{self.hi:g}{')' if self.hi_open else ']'}")

    def check(self, key: str, value: float) -> None:
        if not self.contains(value):
            raise ValueError(f"{key}: expected {self.describe()}, got {value!r}")


def count(default: int, lo: int = 1, hi: int | None = None) -> Any:
    """A dataclass field holding an integer in lo..hi (checked by :class:`Checked`)."""
    return field(default=default, metadata={"bounds": Bounds(lo, hi, integer=True)})


def number(default: float, lo: float | None = None, hi: float | None = None, *,
           lo_open: bool = False, hi_open: bool = False) -> Any:
    """A dataclass field holding a number in [lo, hi] (or open ends), checked by :class:`Checked`."""
    return field(default=default, metadata={"bounds": Bounds(lo, hi, lo_open, hi_open)})


def seed_field() -> Any:
    return count(0, 0, MAX_SEED)


class Checked:
    """Base of the parameter groups: every field declared with :func:`count` or :func:`number` is
    checked on construction, also when a group is built in code or from a checkpoint."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if "bounds" in f.metadata:
                f.metadata["bounds"].check(f.name, getattr(self, f.name))


@dataclass(frozen=True)
class DataParams:
    root: str = "data/synthfaces"  # a CelebA-format folder: SynthFaces output or real CelebA
    # null: root is CelebA-format; a file name inside root: a multi-label table (debiaslab.table:
    # image, split, one 0/1 column per label), e.g. COCO's written by debiaslab.coco_import
    table: str | None = None

    def __post_init__(self) -> None:
        if self.table is not None:
            parts = self.table.split("/")
            if (not self.table or self.table.startswith("/") or "\\" in self.table
                    or any(p in ("", "..") for p in parts) or any(ord(c) < 32 for c in self.table)):
                raise ValueError(f"table: expected a file name inside data.root (e.g. table.csv), "
                                 f"got {self.table!r}")


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
            check_unique(names, key)  # dvc.yaml makes one stage per name
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
class SynthesizeParams(Checked):
    n_images: int = count(20000, 3, MAX_IMAGES)
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])  # train/val/test shares
    seed: int = seed_field()
    base_rate: float = number(0.5, 0, 1, lo_open=True, hi_open=True)  # P(attribute=1) if not skewed
    correlations: dict[str, Correlation] = field(default_factory=dict)  # target -> (protected, skew)
    smile_depth: float = number(2.5, 0)  # px (at 178x218) a smile bends the mouth: how salient Smiling is
    mouth_jitter: float = number(1.5, 0)  # label-free mouth bend, U(-j, j) px; overlap = ambiguity
    mouth_spread: Literal["uniform", "normal"] = "uniform"  # normal: the bend is N(0, j²) instead
    mouth_thickness: float = number(2.2, 0.5, 20)  # px, the mouth line (a visible smile needs more)
    noise_std: float = number(8.0, 0)  # per-pixel Gaussian noise, in uint8 units
    jpeg_quality: int = count(90, 1, 100)
    workers: int = count(2, 1, MAX_WORKERS)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.split) != 3 or min(self.split) <= 0 or abs(sum(self.split) - 1) > 1e-6:
            raise ValueError(f"split: expected three positive shares summing to 1, got {self.split}")


@dataclass(frozen=True)
class PrepareParams(Checked):
    image_size: int = count(32, 8, 128)  # side of the packed square images (the crop is 128x128)
    workers: int = count(2, 1, MAX_WORKERS)


@dataclass(frozen=True)
class TrainParams(Checked):
    arch: str = "small_cnn"
    width: int = count(16, 1, MAX_WIDTH)  # channels of the first block (small_cnn only)
    weights: str | None = None  # local state-dict file for a ResNet backbone; never downloaded
    epochs: int = count(8)
    steps: int = count(0, 0)  # > 0: exactly this many optimiser steps (the papers' iterations), not epochs
    batch_size: int = count(128)
    lr: float = number(1e-3, 0, lo_open=True)
    lr_decay_step: int = count(0, 0)  # > 0: lr × lr_gamma every this many steps (step decay)
    lr_gamma: float = number(0.1, 0, 1, lo_open=True)
    weight_decay: float = number(0.0, 0)
    hflip: bool = True
    precision: Literal["fp32", "bf16"] = "bf16"  # bf16 autocast (CPU with AVX512-BF16, or CUDA)
    channels_last: bool = True
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = seed_field()
    nproc_per_node: int = count(1, 1, MAX_WORKERS)  # > 1: data-parallel under torchrun (a process per GPU)


@dataclass(frozen=True)
class EvaluateParams(Checked):
    n_boot: int = count(500, 1, MAX_BOOT)  # bootstrap resamples of the test set
    seed: int = seed_field()
    kl_bins: int = count(50, 2, MAX_BINS)


@dataclass(frozen=True)
class MultilabelParams:
    # the column train_multilabel and leakage protect; every other column is a label. null:
    # attributes.protected[0] (and no attribute of attributes.protected is a label)
    protected: str | None = None

    def __post_init__(self) -> None:
        if self.protected is not None and (not self.protected.strip()
                                           or any(ord(c) < 32 for c in self.protected)):
            raise ValueError(f"protected: expected a column name of the prepared data, got "
                             f"{self.protected!r}")


@dataclass(frozen=True)
class ColoredDigitsParams(Checked):
    severities: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0, 5.0])  # % conflicting
    # at least one image per digit class in every split
    n_train: int = count(30000, 10, MAX_IMAGES)
    n_valid: int = count(2000, 10, MAX_IMAGES)
    n_test: int = count(10000, 10, MAX_IMAGES)
    seed: int = seed_field()
    workers: int = count(2, 1, MAX_WORKERS)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.severities:
            raise ValueError("severities: expected at least one percentage, e.g. [0.5, 1.0, 2.0, 5.0]")
        for i, s in enumerate(self.severities):
            if not 0 < s < 100:
                raise ValueError(f"severities[{i}]: expected a percentage in (0, 100), got {s!r}")
        # each severity is a folder named by its value (1 and 1.0 are both 1pct)
        check_unique([f"{s:g}" for s in self.severities], "severities")


@dataclass(frozen=True)
class BiasEnsembleParams(Checked):
    """Lee et al. 2023: M GCE models, each votes aligned where p(true class) > tau."""

    n_models: int = count(5)
    epochs: int = count(8)  # about the original 1,000 iterations at 30,000 samples, batch 256
    tau: float = number(0.99, 0, 1, lo_open=True, hi_open=True)
    min_votes: int = 3
    q: float = number(0.7, 0, 1, lo_open=True)
    seed: int = seed_field()

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.min_votes <= self.n_models:
            raise ValueError(f"min_votes: expected 1..n_models ({self.n_models}), got {self.min_votes}")
        top = (MAX_SEED - self.n_models + 1) // 1000  # member m is seeded with seed * 1000 + m
        if self.seed > top:
            raise ValueError(f"seed: expected an integer in 0..{top} (member m of the ensemble is "
                             f"seeded with seed * 1000 + m), got {self.seed}")


BIAS_DATASETS = ("colored_digits", "cmnist", "bffhq", "bar", "dogs_cats")
MAX_PACK_SIZE = 512  # side of packed bias-set images: 20,000 at 512x512x3 are 15 GB already


@dataclass(frozen=True)
class BiasDataParams:
    """The bias set that pack_digits -> bias_ensemble -> train_debias run on: the project's Colored
    Digits (default) or a downloaded BiasEnsemble release, read in that release's layout
    (debiaslab.bias_folder.LAYOUTS). ``colored_digits.severities`` names the severities of either."""

    dataset: Literal["colored_digits", "cmnist", "bffhq", "bar", "dogs_cats"] = "colored_digits"
    root: str = "data/colored_digits"  # the release folder, e.g. dataset/bffhq (only read, never written)
    image_size: int | None = None  # resize to NxN; null: the preset's (224 for BFFHQ, BAR, Dogs & Cats)
    preset: Literal["paper", "none"] = "paper"  # paper: BIAS_PRESETS[dataset] replaces its keys

    def __post_init__(self) -> None:
        if not self.root or any(ord(c) < 32 for c in self.root):
            raise ValueError(f"root: expected a folder path, got {self.root!r}")
        if self.dataset != "colored_digits" and Path(self.root) == Path("data/colored_digits"):
            raise ValueError(f"root: dataset {self.dataset} reads a downloaded release; set root to its "
                             f"folder (e.g. dataset/{BIAS_RELEASE_FOLDERS[self.dataset]}), not "
                             "data/colored_digits")
        if self.image_size is not None:
            Bounds(8, MAX_PACK_SIZE, integer=True).check("image_size", self.image_size)


# The folder each release unzips to (BiasEnsemble's scripts/unzip_codes/*.sh).
BIAS_RELEASE_FOLDERS = {"cmnist": "cmnist", "bffhq": "bffhq", "bar": "bar", "dogs_cats": "dogs_and_cats"}

# The paper's hyperparameters per downloaded dataset (BiasEnsemble's README and
# scripts/train_codes/train_*.sh, learner.py's data2model / data2batch_size, data/util.py's
# transforms): applied over `debias_train` and `hparams` when bias_data.preset is "paper"
# (see apply_bias_preset). Adam, no weight decay, the learning rate × lr_gamma every 10,000 steps
# (the original decays DisEnt's runs only, `--use_lr_decay`; here every method of a bias set trains
# on one schedule, so they are compared alike); BiasEnsemble's 5 GCE members, tau 0.99, 3 votes,
# q 0.7 are bias_ensemble's defaults already. The length of training is left to the user, as a
# first run on a new machine is rarely the paper's: the paper's 50,000 iterations are
# `-S debias_train.steps=50000` (curr_step 10,000 of them before DisEnt's swap: swap_after 0.2),
# and pack_digits prints the bias_ensemble.epochs that make its 1,000. Colored Digits has no preset.
def _paper_preset(image_size: int | None, arch: str, lr: float, batch_size: int, hflip: bool,
                  disent_lambdas: tuple[float, float, float], lr_gamma: float) -> dict[str, Any]:
    """One dataset's preset: its debias_train values, and LfF/DisEnt with the paper's q 0.7,
    ema_alpha 0.7, swap after 20 % of training and DisEnt's (dis_align, swap_align, swap) λs."""
    lff = {"q": 0.7, "ema_alpha": 0.7}
    dis_align, swap_align, swap = disent_lambdas
    schedule = {"lr_decay_step": 10_000, "lr_gamma": lr_gamma}
    return {"image_size": image_size,
            "debias_train": {"arch": arch, "lr": lr, "batch_size": batch_size, "hflip": hflip,
                             **schedule},
            "hparams": {"lff": lff, "disent": {**lff, "lambda_dis_align": dis_align,
                                               "lambda_swap_align": swap_align, "lambda_swap": swap,
                                               "swap_after": 0.2}}}


PAPER_ITERATIONS = {"train": 50_000, "bias_ensemble": 1_000}  # train.py num_steps, biased_model_train_iter
BIAS_PRESETS: dict[str, dict[str, Any]] = {  # lr_gamma: the --lr_gamma of the README's DisEnt runs
    "cmnist": _paper_preset(None, "mlp", 0.01, 256, False, (10.0, 10.0, 1.0), 0.5),  # 28x28 as released
    "bffhq": _paper_preset(224, "resnet18", 1e-4, 64, True, (2.0, 2.0, 0.1), 0.1),
    "dogs_cats": _paper_preset(224, "resnet18", 1e-4, 64, True, (1.0, 1.0, 1.0), 0.1),
    # the paper starts BAR from ImageNet weights: a local file in debias_train.weights
    "bar": _paper_preset(224, "resnet18", 1e-5, 64, True, (1.0, 1.0, 1.0), 0.1),
}


def bias_preset(data: BiasDataParams) -> dict[str, Any]:
    """The preset bias_data selects: BIAS_PRESETS[dataset] under preset "paper", else none."""
    return BIAS_PRESETS.get(data.dataset, {}) if data.preset == "paper" else {}


def bias_image_size(data: BiasDataParams) -> int | None:
    """bias_data.image_size if set, else the preset's (None: keep the files' own size)."""
    return data.image_size if data.image_size is not None else bias_preset(data).get("image_size")


def apply_bias_preset(params: dict[str, Any], data: BiasDataParams) -> dict[str, Any]:
    """``params`` with the preset's values over ``debias_train`` and, when loaded with it, over the
    lff/disent entries of ``hparams`` (their BiasEnsemble runs use the same): the groups the Colored Digits
    stages read. Faces stages read other train groups and are left alone."""
    preset = bias_preset(data)
    if not preset or "debias_train" not in params:
        return params
    out = dict(params)
    out["debias_train"] = dataclasses.replace(params["debias_train"], **preset["debias_train"])
    if "hparams" in params:
        hparams = {method: dict(values) for method, values in params["hparams"].items()}
        for method, values in preset["hparams"].items():
            hparams[method] = {**hparams.get(method, {}), **{k: float(v) for k, v in values.items()}}
        out["hparams"] = hparams
    return out


@dataclass(frozen=True)
class FacesBiasParams:
    """SynthFaces as a BFFHQ-like benchmark: one binary target, one binary bias attribute."""

    target: str = "Smiling"
    bias: str = "Eyeglasses"

    def __post_init__(self) -> None:
        check_attribute_names([self.target, self.bias], CELEBA_ATTRIBUTES, "target/bias")
        if self.target == self.bias:
            raise ValueError(f"bias: {self.bias!r} is also the target; expected another attribute")


def method_hparams(hparams: dict[str, dict], method: str) -> dict | None:
    """A method's entry in the ``hparams`` group (its BiasEnsemble runs use the same)."""
    return hparams.get(method)


# The GAN paper's target classifiers (stage evaluate), beside methods.fair's (evaluate_fair).
GAN_CLASSIFIERS = ("baseline", "augmented", "augmented_inversion")


def bias_ensemble_run(method: str) -> str:
    """The name of a method's run with the BiasEnsemble selection: its folders and metrics files."""
    return f"{method}_be"


@dataclass(frozen=True)
class MethodsParams:
    """Which registered methods (``src/debiaslab/methods/NAME.py``) each experiment trains: the
    lists dvc.yaml's stages iterate over, so adding a method to an experiment is one entry here."""

    fair: list[str] = field(default_factory=lambda: ["fairbatch", "drfairness"])  # per target
    multilabel: list[str] = field(default_factory=lambda: ["erm", "adversarial"])  # leakage's models
    debias: list[str] = field(default_factory=lambda: ["erm", "lff", "disent"])  # per bias set
    bias_ensemble: list[str] = field(default_factory=lambda: ["lff", "disent"])  # again, with BE

    def __post_init__(self) -> None:
        for key in ("fair", "multilabel", "debias", "bias_ensemble"):
            names = getattr(self, key)
            for name in names:
                if name not in METHOD_HPARAMS:
                    raise ValueError(f"{key}: unknown method {name!r} (registered in "
                                     f"src/debiaslab/methods/: {', '.join(METHOD_HPARAMS)})")
            check_unique(names, key)
        for name in self.multilabel:
            if name not in MULTILABEL_METHODS:
                raise ValueError(f"multilabel: {name!r} cannot train a multi-label classifier "
                                 f"(expected one of: {', '.join(MULTILABEL_METHODS)})")


@dataclass(frozen=True)
class LeakageParams(Checked):
    """The attacker of Wang et al. 2019. Reference: 100 epochs, lr 5e-5, batch 128, 5 rounds;
    the defaults here reach the same sanity values (0.50 on independent labels, 1.0 on a copy of
    the attribute) in a fraction of the time."""

    rounds: int = count(3)
    p_grid: list[float] = field(default_factory=lambda: [0.0, 0.05, 0.1, 0.2, 0.3, 0.5])
    epochs: int = count(30)
    batch_size: int = count(256)
    lr: float = number(1e-3, 0, lo_open=True)
    weight_decay: float = number(1e-5, 0)
    max_rows: int = count(8000, 20)  # attacker rows per split at most (balanced subsamples of these)
    # the thresholds of a model's F1, at which λ_D(F1) is read: sigmoid 0.5 as Wang et al.'s code
    # (half), or each label's calibrated val threshold (as many predicted as true positives on val)
    f1_threshold: Literal["half", "calibrated"] = "half"
    seed: int = seed_field()

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.p_grid or any(not 0 <= p <= 0.5 for p in self.p_grid):
            raise ValueError(f"p_grid: expected flip probabilities in [0, 0.5], got {self.p_grid}")


@dataclass(frozen=True)
class BalancedSubsetsParams(Checked):
    """Wang et al.'s α-balanced training sets (their ``--balanced --ratio``): per label, and
    overall, the two protected groups differ in count by at most a factor α
    (:mod:`debiaslab.balanced_subsets`). Each α trains every ``methods.multilabel`` model again;
    α names folders as written (1.0 -> alpha_1.0), as DVC writes ``${item.alpha}``."""

    alphas: list[float] = field(default_factory=lambda: [1.0, 2.0, 3.0])
    seed: int = seed_field()

    def __post_init__(self) -> None:
        super().__post_init__()
        for i, a in enumerate(self.alphas):
            if not (math.isfinite(a) and 1 <= a <= 1e6):
                raise ValueError(f"alphas[{i}]: expected a ratio >= 1, got {a!r}")
        check_unique([f"{a:g}" for a in self.alphas], "alphas")


@dataclass(frozen=True)
class GanParams(Checked):
    """The generator of the latent-space method: a DCGAN trained here, a saved one, a PGAN release
    (the paper's CelebA model), or (SynthFaces only) the renderer itself, an ideal generator whose
    latent space is known."""

    source: Literal["train", "checkpoint", "pgan", "renderer"] = "train"
    # source=checkpoint: a generator.pt written by train_gan; source=pgan: a pytorch_GAN_zoo release .pth
    checkpoint: str | None = None
    latent_dim: int = count(64, 1, MAX_LATENT_DIM)
    g_width: int = count(16, 1, MAX_WIDTH)  # generator channels at the last level; 8x at the 4x4 base
    d_width: int = count(16, 1, MAX_WIDTH)
    epochs: int = count(12)
    batch_size: int = count(64)
    lr_g: float = number(2e-4, 0, lo_open=True)
    lr_d: float = number(2e-4, 0, lo_open=True)
    ema_decay: float = number(0.999, 0, 1, hi_open=True)  # averaged generator: smoother samples and latents
    hflip: bool = True
    precision: Literal["fp32", "bf16"] = "bf16"
    device: str = "auto"
    sample_every: int = count(4)  # epochs between sample grids in reports/gan/
    seed: int = seed_field()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.source in ("checkpoint", "pgan") and not self.checkpoint:
            raise ValueError(f"checkpoint: gan.source={self.source} needs a file path here")


@dataclass(frozen=True)
class LatentsParams(Checked):
    """Generated images G(z): the first ``latent_edit.n_fit`` fit the SVMs, the rest get z'."""

    n: int = count(20000, 20, MAX_IMAGES)
    seed: int = seed_field()
    batch_size: int = count(512)


@dataclass(frozen=True)
class LatentEditParams(Checked):
    variant: Literal["standard", "domain_dependent", "multi", "reflect", "project"] = "standard"
    n_fit: int = count(10000, 10)  # latents the SVMs see (the paper: 10,000 of 175,000); < latents.n
    C: float = number(1.0, 0, lo_open=True)
    holdout: float = number(0.2, 0, 1, lo_open=True, hi_open=True)  # share of n_fit measuring accuracy
    max_cos: float = number(0.95, 0, 1, lo_open=True, hi_open=True)  # refuse edits above |cos(w_t, w_g)|
    # which labels the SVMs are fitted on and the synthetic images carry: the baseline classifiers'
    # (the method) or the true ones (the renderer's; the oracle's for a trained GAN), a diagnostic
    labels: Literal["hallucinated", "ground_truth"] = "hallucinated"
    # the ablation of the original's linear_underrep.py: the SVMs see only `underrep_count`
    # latents of each protected group whose target is `underrep_value`, and up to the rest of
    # n_fit of the other target value (null: the first n_fit latents, the method itself)
    underrep_value: Literal[0, 1] | None = None
    underrep_count: int = count(500, 1, MAX_IMAGES)
    seed: int = seed_field()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.underrep_value is not None and not 2 * self.underrep_count < self.n_fit:
            raise ValueError(f"underrep_count: {self.underrep_count} latents per protected group "
                             f"leave none of n_fit = {self.n_fit} for the other target value; "
                             "expected 2 × underrep_count < n_fit")


@dataclass(frozen=True)
class FullSkewParams(Checked):
    """The ablation of the original's full_skew_tests.py: a target classifier trained only on the
    images whose target equals the protected attribute (``opposite``: differs from it), so the two
    are confounded completely; its test AP against each says which one it learned."""

    opposite: bool = False


@dataclass(frozen=True)
class ReportParams:
    """The GAN paper's summary table groups ``attributes.targets`` into categories (Ramaswamy et al.:
    inconsistently labelled, gender-dependent, gender-independent) and averages AP, DEO, BA and KL
    of the baseline and the augmented model in each. {category name: [targets]}; empty: no table."""

    categories: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for name, targets in self.categories.items():
            if not name.strip() or len(name) > 60 or not name.isprintable():
                raise ValueError(f"categories: {name!r} is not a category name (printable, 1-60 characters)")
            check_attribute_names(targets, CELEBA_ATTRIBUTES, f"categories.{name}")
            for target in targets:
                if target in seen:
                    raise ValueError(f"categories: {target} is in both {seen[target]!r} and {name!r}")
                seen[target] = name


@dataclass(frozen=True)
class OracleParams(Checked):
    """Unbiased judge for SynthFaces (set enabled: false for real CelebA: there is no oracle)."""

    enabled: bool = True
    n_images: int = count(8000, 20, MAX_IMAGES)
    epochs: int = count(6)
    seed: int = seed_field()


@dataclass(frozen=True)
class BalancedTestParams(Checked):
    """SynthFaces only: an extra test split with ``per_cell`` faces in every (target, protected)
    cell, so the intervals of DEO and the other gaps are narrow; off on real data."""

    enabled: bool = True
    per_cell: int = count(1500, 1, MAX_IMAGES)
    seed: int = seed_field()


@dataclass(frozen=True)
class InversionParams(Checked):
    """GAN inversion by optimisation: real training images -> latents -> z' -> pairs."""

    n_images: int = count(2000, 1, MAX_IMAGES)
    steps: int = count(150)
    lr: float = number(0.05, 0, lo_open=True)
    prior_weight: float = number(0.05, 0)
    seed: int = seed_field()


@dataclass(frozen=True)
class FairCellsParams(Checked):
    """Generated images per (target, protected) cell for Dr-Fairness (those of ``gen_data``)."""

    per_cell: int = count(2000, 1, MAX_IMAGES)
    val_per_cell: int = count(200, 1, MAX_IMAGES)  # held out for the sampler's probe batches
    seed: int = seed_field()


PROJECT_GENERATED = "data/generated"  # gen_data.root's default: the project's own G(z) and G(z')

# Dr-Fairness's CelebA folder-name tokens (its README: old_male_nosmile_glasses_blackhair, ...;
# preprocessing_celeba.py's value names), as 0/1 labels of the CelebA attributes they stand for.
# Hair colour is three-valued there; here it is the binary Black_Hair or Blond_Hair.
DRFAIRNESS_TOKENS = {
    "Young": {"young": 1, "old": 0},
    "Male": {"male": 1, "female": 0},
    "Smiling": {"smile": 1, "nosmile": 0},
    "Eyeglasses": {"glasses": 1, "noglasses": 0},
    "Black_Hair": {"blackhair": 1, "blondhair": 0, "otherhair": 0},
    "Blond_Hair": {"blondhair": 1, "blackhair": 0, "otherhair": 0},
}


@dataclass(frozen=True)
class GenDataParams:
    """The generated data fair_cells puts into Dr-Fairness's (label, group) cells: the project's
    own G(z) and G(z') (``root`` data/generated, the default), or a folder of generated images a
    user brings in Dr-Fairness's layout, one folder per attribute combination named by its values
    joined with ``_`` (see :mod:`debiaslab.gen_folders`); ``tokens`` maps each attribute's
    folder-name tokens to its 0/1 label. Only read, never written."""

    root: str = PROJECT_GENERATED
    tokens: dict[str, dict[str, int]] = field(
        default_factory=lambda: {a: dict(m) for a, m in DRFAIRNESS_TOKENS.items()})

    def __post_init__(self) -> None:
        if not self.root or any(ord(c) < 32 for c in self.root):
            raise ValueError(f"root: expected a folder path, got {self.root!r}")
        check_attribute_names(list(self.tokens), CELEBA_ATTRIBUTES, "tokens")
        for attribute, tokens in self.tokens.items():
            where = f"tokens.{attribute}"
            for token, label in tokens.items():
                if not token or any(c == "_" or c == "/" or c == "\\" or c.isspace() or ord(c) < 32
                                    for c in token):
                    raise ValueError(f"{where}: token {token!r}: expected a non-empty word without _, / "
                                     "or spaces (folder names are split on _)")
                if label not in (0, 1):
                    raise ValueError(
                        f"{where}.{token}: expected 0 or 1, got {label!r} (targets and groups are binary "
                        "here: the real labels, the classifiers' one output and the fairness metrics "
                        "are 0/1; map several tokens to one label to merge values, e.g. blondhair: 0, "
                        "otherhair: 0)")
            found = set(tokens.values())
            if found != {0, 1}:
                raise ValueError(f"{where}: expected tokens for both labels 0 and 1, got "
                                 f"{'only ' + str(found.pop()) if found else 'none'}")


# What each hyperparameter of METHOD_HPARAMS accepts beyond its default's type (a name means the
# same in every method that has it; names not listed are checked for type only). Integers stay
# below sizes that would exhaust memory.
HPARAM_BOUNDS = {
    "q": Bounds(0, 1, lo_open=True),  # GCE's exponent; q -> 0 is plain cross-entropy
    "ema_alpha": Bounds(0, 1),
    "grl_weight": Bounds(0),  # a negative weight would help the adversary instead
    "hidden": Bounds(1, 65_536, integer=True),
    "lambda_dis_align": Bounds(0),
    "lambda_swap_align": Bounds(0),
    "lambda_swap": Bounds(0),
    "swap_after": Bounds(0, 1),  # a share of all steps
    "alpha": Bounds(0, 1),  # FairBatch's step on λ, a probability
    "val_batch": Bounds(1, 65_536, integer=True),
    "k": Bounds(0),
    "lr": Bounds(0, lo_open=True),
    "l1_weight": Bounds(0),
    "mask_width": Bounds(1, MAX_WIDTH, integer=True),
    "mask_depth": Bounds(1, 8, integer=True),  # halvings; a 32-px image has 5
    "adversary_width": Bounds(1, MAX_WIDTH, integer=True),
    "update_iter": Bounds(1, 65_536, integer=True),  # batches per Dr-Fairness step
    "ema_decay": Bounds(0, 1, hi_open=True),  # 1 would never move the average
}
HPARAM_CHOICES = {"fairness": FAIRNESS}


def parse_hparams(raw: Any, where: str = "hparams") -> dict[str, dict[str, float | str]]:
    """The ``hparams`` group: {method: {key: value}}, every method and key known
    (:data:`METHOD_HPARAMS`) and every value of its default's type, in range.

    Numbers come back as floats, integers included, as they always have: checkpoints store these
    values, and ``128.0`` instead of ``128`` would make every saved model a different file.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise DebiaslabError(f"{where}: expected a mapping of methods, got {raw!r}")
    out = {}
    for method, values in raw.items():
        if method not in METHOD_HPARAMS:
            raise DebiaslabError(f"{where}.{method}: unknown method "
                                 f"(expected one of: {', '.join(METHOD_HPARAMS)})")
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise DebiaslabError(f"{where}.{method}: expected a mapping of hyperparameters, got {values!r}")
        out[method] = {key: _hparam(method, key, value, f"{where}.{method}") for key, value in values.items()}
    return out


def _hparam(method: str, key: Any, value: Any, where: str) -> float | str:
    defaults = METHOD_HPARAMS[method]
    if key not in defaults:
        known = f"expected one of: {', '.join(defaults)}" if defaults else f"{method} has no hyperparameters"
        raise DebiaslabError(f"{where}.{key}: unknown key ({known})")
    default = defaults[key]
    if isinstance(default, str):
        choices = HPARAM_CHOICES.get(key)
        if choices is None and isinstance(value, str):
            return value
        if choices is None or value not in choices:
            expected = f"one of {', '.join(map(repr, choices))}" if choices else "a string"
            raise DebiaslabError(f"{where}.{key}: expected {expected}, got {value!r}")
        return value
    if isinstance(default, int) and (isinstance(value, bool) or not isinstance(value, int)):
        raise DebiaslabError(f"{where}.{key}: expected an integer, got {value!r}")
    number = _convert(value, float, f"{where}.{key}")
    try:
        HPARAM_BOUNDS.get(key, Bounds()).check(key, value if isinstance(default, int) else number)
    except ValueError as err:
        raise DebiaslabError(f"{where}.{err}") from None
    return number


GROUPS: dict[str, Any] = {
    "data": DataParams,
    "attributes": AttributeParams,
    "synthesize": SynthesizeParams,
    "prepare": PrepareParams,
    "train": TrainParams,
    "evaluate": EvaluateParams,
    "methods": MethodsParams,  # which methods each experiment trains
    "multilabel": MultilabelParams,
    "hparams": parse_hparams,  # per-method hyperparameters
    "leakage": LeakageParams,
    "balanced_subsets": BalancedSubsetsParams,  # Wang et al.'s α-balanced training sets
    "colored_digits": ColoredDigitsParams,
    "bias_ensemble": BiasEnsembleParams,
    "debias_train": TrainParams,  # the `train` schema, for the Colored Digits models
    "bias_data": BiasDataParams,  # which bias set those stages read, and its preset
    "faces_bias": FacesBiasParams,
    "faces_debias_train": TrainParams,
    "faces_bias_ensemble": BiasEnsembleParams,
    "gan": GanParams,
    "latents": LatentsParams,
    "latent_edit": LatentEditParams,
    "oracle": OracleParams,
    "balanced_test": BalancedTestParams,
    "inversion": InversionParams,
    "fair_cells": FairCellsParams,
    "gen_data": GenDataParams,  # which generated data fair_cells reads
    "full_skew": FullSkewParams,  # the GAN paper's fully skewed ablation
    "report": ReportParams,  # the categories of the GAN paper's table
}

T = TypeVar("T")


def check_attribute_names(names: list[str], valid: typing.Sequence[str], key: str) -> None:
    for name in names:
        if name not in valid:
            raise ValueError(f"{key}: unknown attribute {name!r} (valid: {', '.join(valid)})")


def check_unique(names: list, key: str) -> None:
    repeated = sorted({str(n) for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{key}: {repeated[0]} is listed twice; expected each once")


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
    if tp is float:
        return _finite(value, wrong, where)
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise wrong
    return value


def _finite(value: Any, wrong: DebiaslabError, where: str) -> float:
    """A number as a float: ints too, and strings, as YAML 1.1 reads "1e-3" as one; NaN and
    infinities are refused (a NaN compares false with every bound, so no range check sees it)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise wrong
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        raise DebiaslabError(f"{where}: expected a finite number, got {value!r}") from None
    except ValueError:
        raise wrong from None
    if not math.isfinite(number):
        raise DebiaslabError(f"{where}: expected a finite number, got {value!r}")
    return number


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
    """The mapping in a params file (params.yaml, a profile), each problem in one line with
    its line number where YAML gives one; a key given twice in a mapping is refused."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DebiaslabError(f"{path}: file not found") from None
    except OSError as err:
        raise DebiaslabError(f"{path}: cannot read ({err.strerror or err})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise DebiaslabError(f"{path} line {line}: not UTF-8 text (byte 0x{data[err.start]:02x}); "
                             "save the file as UTF-8") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path} line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        raise DebiaslabError(f"{where}: not valid YAML: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise DebiaslabError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if raw is None:
        raise DebiaslabError(f"{path}: no parameters (the file is empty or only comments); expected "
                             "a mapping of parameter groups such as 'train:'")
    if not isinstance(raw, dict):
        raise DebiaslabError(f"{path}: expected a mapping of parameter groups such as 'train:', "
                             f"got {_kind(raw)}")
    return raw


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number",
            bool: "true or false"}.get(type(value), type(value).__name__)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping: PyYAML would keep the
    last silently, so a second `train:` group would replace the first without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r} (first on line {seen[key] + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def load_params(*groups: str, path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read and validate the named groups of ``path``; unknown top-level groups are errors too."""
    raw = read_params_file(path)
    for name in [*raw, *groups]:
        if name not in GROUPS:
            raise DebiaslabError(
                f"{path}: {name}: unknown parameter group (expected one of: {', '.join(GROUPS)})")
    out = {}
    for name in groups:
        try:
            schema = GROUPS[name]
            out[name] = (parse_group(schema, raw.get(name), name) if dataclasses.is_dataclass(schema)
                         else schema(raw.get(name), name))
        except DebiaslabError as err:
            raise DebiaslabError(f"{path}: {err}") from None
    if "debias_train" in out:  # the bias set's preset (bias_data.preset) replaces some of its values
        try:
            data = parse_group(BiasDataParams, raw.get("bias_data"), "bias_data")
        except DebiaslabError as err:
            raise DebiaslabError(f"{path}: {err}") from None
        out = apply_bias_preset(out, data)
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
