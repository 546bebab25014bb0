"""Does the GAN draw each attribute at the right rate? An oracle's verdict, epoch by epoch.

Ramaswamy et al.'s method labels G(z) with classifiers; if the generator rarely draws a smile, those
labels are near noise and the hyperplanes fitted to them mean little. On SynthFaces an oracle
(:mod:`debiaslab.oracle`, trained on an unbiased render) can judge what the GAN draws. The same
oracle labels a fixed subsample of the real training images, so its own errors largely cancel in
the gap (generated rate - data rate). For every (target, protected) pair the agreement rate
P(t = g) is compared too: with the two marginal rates it fixes the whole 2x2 table, so it says
whether the GAN also reproduces the training split's correlation.

The functions are pure (label arrays in, dicts out, options keyword-only); :class:`FidelityMonitor`
holds what stays fixed across epochs (the latents, the oracle's verdict on real images) and scores a
generator without changing its weights, its train/eval modes or any random stream.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .errors import DebiaslabError
from .gan import generate, sample_latents
from .oracle import load_oracle, oracle_labels

FIDELITY_SEED = 0xF1DE  # the fixed latents and real subsample (no other stream in the project uses it)
FIELDS = {"generated": "rate", "gap": "gap", "data": "data_rate", "true": "true_rate"}


def agreement_key(target: str, protected: str) -> str:
    """The name under which P(target = protected) is reported (CelebA names hold no '_eq_')."""
    return f"{target}_eq_{protected}"


def attribute_rates(labels: Mapping[str, np.ndarray], *,
                    pairs: Iterable[tuple[str, str]] = ()) -> dict[str, float]:
    """P(a = 1) for each attribute of ``labels`` ({name: 0/1 array}, all of one length), and
    P(t = g) for each (t, g) in ``pairs``, under ``agreement_key(t, g)``."""
    arrays = {name: np.asarray(values) for name, values in labels.items()}
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) > 1 or 0 in lengths:
        raise ValueError(f"labels must be non-empty and of one length (got lengths {sorted(lengths)})")
    for name, a in arrays.items():
        if a.ndim != 1 or not np.isin(a, (0, 1)).all():
            raise ValueError(f"labels of {name!r} must be a 1-d array of 0/1")
    rates = {name: float(np.mean(a)) for name, a in arrays.items()}
    for t, g in pairs:
        if t not in arrays or g not in arrays:
            raise ValueError(f"pair ({t!r}, {g!r}): no labels for {t if t not in arrays else g!r}")
        rates[agreement_key(t, g)] = float(np.mean(arrays[t] == arrays[g]))
    return rates


def fidelity(generated_rates: Mapping[str, float], data_rates: Mapping[str, float], *,
             true_rates: Mapping[str, float] | None = None) -> dict[str, dict[str, float]]:
    """{name: {"generated", "data", "gap" = generated - data[, "true"]}} for every name of
    ``generated_rates``; ``data_rates`` (and ``true_rates``, if given) must have them all."""
    for what, rates in (("data_rates", data_rates), ("true_rates", true_rates)):
        missing = [n for n in generated_rates if rates is not None and n not in rates]
        if missing:
            raise ValueError(f"{what} has no rate for {missing[0]!r}")
    out = {}
    for name, rate in generated_rates.items():
        row = {"generated": float(rate), "data": float(data_rates[name]),
               "gap": float(rate) - float(data_rates[name])}
        if true_rates is not None:
            row["true"] = float(true_rates[name])
        out[name] = row
    return out


def as_metrics(report: Mapping[str, Mapping[str, float]], *, prefix: str = "fidelity/",
               fields: Sequence[str] = ("generated", "gap")) -> dict[str, float]:
    """A :func:`fidelity` report as flat metric names: ``{prefix}{name}_rate`` (generated),
    ``_gap``, ``_data_rate``, ``_true_rate``, for the ``fields`` asked for and present."""
    unknown = [f for f in fields if f not in FIELDS]
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r} (valid: {', '.join(FIELDS)})")
    return {f"{prefix}{name}_{FIELDS[f]}": row[f] for name, row in report.items()
            for f in fields if f in row}


def summary_line(report: Mapping[str, Mapping[str, float]]) -> str:
    """One line: generated vs data rate (gap) per name, e.g. 'Smiling 0.31 vs 0.50 (-0.19)'."""
    return ", ".join(f"{name} {row['generated']:.2f} vs {row['data']:.2f} ({row['gap']:+.2f})"
                     for name, row in report.items())


@contextlib.contextmanager
def rng_untouched(device: torch.device) -> Iterator[None]:
    """Whatever runs inside leaves torch's global random state (CPU, and ``device`` if CUDA) as it
    found it: loading a classifier, for one, draws its initial weights from it."""
    cuda = []
    if device.type == "cuda":
        cuda = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=cuda):
        yield


@contextlib.contextmanager
def modes_kept(module: nn.Module) -> Iterator[None]:
    """Restore every submodule's train/eval mode on exit (``generate`` switches to eval)."""
    modes = [(m, m.training) for m in module.modules()]
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def load_judge(path: str, device: torch.device):
    """The oracle of ``path`` (models/oracle/model.pt), or None where it is a disabled marker (real
    data); loaded without a draw from torch's random streams."""
    with rng_untouched(device):
        return load_oracle(path, device)


def real_subsample(n: int, size: int, *, seed: int = FIDELITY_SEED) -> np.ndarray:
    """Sorted positions of a fixed random subsample (all of ``n`` if ``size >= n``)."""
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 1]).choice(n, size, replace=False))


class FidelityMonitor:
    """The oracle's rates on G(z) for fixed latents against its rates on fixed real images.

    ``monitor(generator)`` returns a :func:`fidelity` report: per attribute (``targets`` and
    ``protected``) and per (target, protected) agreement, the rate on generated images, on the
    real subsample, their gap, and (with ``true_labels``, e.g. the training split's) the true rate.
    """

    def __init__(self, oracle, real_images: np.ndarray, *, targets: Sequence[str],
                 protected: Sequence[str], latent_dim: int, device: torch.device,
                 precision: str = "bf16", n_latents: int = 2000, n_real: int = 2000,
                 seed: int = FIDELITY_SEED, true_labels: Mapping[str, np.ndarray] | None = None,
                 batch_size: int = 512):
        if n_latents < 1 or n_real < 1 or len(real_images) == 0:
            raise ValueError("the fidelity check needs at least one latent and one real image")
        judged_size = oracle[1].get("image_size")
        if judged_size is not None and judged_size != real_images.shape[1]:
            raise DebiaslabError(f"models/oracle/model.pt: the oracle judges {judged_size}-px images, "
                                 f"the GAN draws {real_images.shape[1]}-px ones (rerun the oracle stage)")
        self.oracle, self.device, self.precision, self.batch_size = oracle, device, precision, batch_size
        self.names = list(dict.fromkeys([*targets, *protected]))
        self.pairs = [(t, g) for t in targets for g in protected]
        self.latents = sample_latents(n_latents, latent_dim, seed=seed)
        real = np.asarray(real_images[real_subsample(len(real_images), n_real, seed=seed)])
        with rng_untouched(device):
            self.data_rates = attribute_rates(oracle_labels(oracle, real, self.names), pairs=self.pairs)
        self.true_rates = None if true_labels is None else attribute_rates(
            {n: true_labels[n] for n in self.names}, pairs=self.pairs)

    def generated_labels(self, generator: nn.Module) -> dict[str, np.ndarray]:
        """The oracle's labels of G(z) for the fixed latents."""
        with rng_untouched(self.device), modes_kept(generator):
            images = np.concatenate(list(generate(generator, self.latents, device=self.device,
                                                  precision=self.precision,
                                                  batch_size=self.batch_size)))
            return oracle_labels(self.oracle, images, self.names)

    def __call__(self, generator: nn.Module) -> dict[str, dict[str, float]]:
        rates = attribute_rates(self.generated_labels(generator), pairs=self.pairs)
        return fidelity(rates, self.data_rates, true_rates=self.true_rates)
