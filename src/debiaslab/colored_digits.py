"""Colored Digits: a Colored-MNIST stand-in built offline from scikit-learn's 8x8 digits.

The 1,797 source images are first split by *source* into train/valid/test (stratified by digit),
so no source glyph appears in two splits. Each split is then grown to the requested size by
jittering its sources: the 8x8 glyph is upscaled bilinearly into MNIST's 20-pixel box inside a
28x28 canvas while being shifted (+-2 px) and scaled (0.85-1.15), and its stroke is thickened or
thinned by a gamma on intensity. Shift and scale have no rotation, so the resampling is separable:
one pair of (28x8) bilinear weight matrices per image, applied to a whole batch with one matmul.

Colour follows the LfF protocol: foreground intensity times the colour of the bias label plus
Gaussian colour noise (sigma 0.005 per image and channel), background black. In each training
severity a fraction rho of every class is bias-conflicting (colour drawn uniformly from the other
nine), the rest take their own class colour. ``valid/`` (shared by all severities) and ``test/``
are unbiased: within each digit every colour is equally frequent, so model selection never sees
the bias. The training glyphs are the same for every severity; only the colours differ.

Layout written under the output root (BiasEnsemble / DisEnt convention)::

    <pct>/align/<class>/<idx>_<target>_<bias>.png      one <pct> per severity: 0.5pct, 1pct, ...
    <pct>/conflict/<class>/<idx>_<target>_<bias>.png
    valid/<idx>_<target>_<bias>.png
    test/<class>/<idx>_<target>_<bias>.png
    meta.json                                          parameters, counts, source split

Every random draw is seeded from (seed, split, chunk), so the bytes do not depend on ``workers``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .errors import DebiaslabError
from .io import atomic_path, write_json

PALETTE = np.array([
    (251, 80, 43), (253, 233, 90), (172, 118, 148), (200, 212, 153), (22, 198, 250),
    (82, 245, 114), (6, 60, 193), (142, 26, 194), (53, 100, 5), (213, 52, 68),
], dtype=np.uint8)  # LfF's Colored MNIST palette; index = digit
N_CLASSES = 10
SEVERITIES = (0.5, 1.0, 2.0, 5.0)  # percent of bias-conflicting training samples
SOURCE_FRACTIONS = (0.70, 0.15, 0.15)  # train/valid/test share of the 1,797 source images
SIZE = 28  # output canvas, as MNIST
DIGIT_BOX = 20.0  # MNIST digits fill a 20x20 box centred in the 28x28 canvas
MAX_SHIFT = 2.0  # pixels, each axis
SCALE_RANGE = (0.85, 1.15)
GAMMA_RANGE = (0.6, 1.6)  # intensity ** gamma, log-uniform: < 1 thickens strokes, > 1 thins them
COLOUR_NOISE = 0.005  # std of the per-image colour jitter, in 0..1 units
CHUNK = 512  # images rendered together; also the unit of seeding
SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}


def severity_dir(pct: float) -> str:
    """Folder name of a severity given in percent: 0.5 -> '0.5pct', 1.0 -> '1pct'."""
    return f"{float(pct):g}pct"


# --------------------------------------------------------------------------- sources and labels
def load_sources() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits: intensities (1797, 8, 8) float32 in 0..1 and digits (1797,)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


def split_sources(targets: np.ndarray, seed: int,
                  fractions: Sequence[float] = SOURCE_FRACTIONS) -> dict[str, np.ndarray]:
    """Partition source indices into train/valid/test, stratified by digit; sorted index arrays."""
    rng = np.random.default_rng([seed, 30])
    parts: dict[str, list[np.ndarray]] = {split: [] for split in SPLIT_CODES}
    for c in np.unique(targets):
        idx = rng.permutation(np.flatnonzero(targets == c))
        n_train = int(round(len(idx) * fractions[0]))
        n_valid = int(round(len(idx) * fractions[1]))
        parts["train"].append(idx[:n_train])
        parts["valid"].append(idx[n_train:n_train + n_valid])
        parts["test"].append(idx[n_train + n_valid:])
    return {split: np.sort(np.concatenate(p)) for split, p in parts.items()}


def draw_sources(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` source indices from ``pool``, each source used equally often (+-1), in random order."""
    reps = -(-n // len(pool))
    return np.concatenate([rng.permutation(pool) for _ in range(reps)])[:n]


def conflicting_colours(targets: np.ndarray, pct: float, rng: np.random.Generator) -> np.ndarray:
    """Bias labels with exactly round(pct% of n) conflicting samples, spread evenly over classes.

    Each class gets floor(pct% of its size) conflicting samples; the remainder goes to the classes
    with the largest fractional parts (ties broken at random). A conflicting sample's colour is
    drawn uniformly from the other nine; every other sample takes its own class colour.
    """
    classes, sizes = np.unique(targets, return_counts=True)
    quota = sizes * pct / 100.0
    k = np.floor(quota).astype(np.int64)
    extra = int(round(len(targets) * pct / 100.0)) - int(k.sum())
    if extra > 0:
        order = np.lexsort((rng.random(len(classes)), -(quota - k)))
        k[order[:extra]] += 1
    bias = targets.copy()
    for c, kc in zip(classes, k, strict=True):
        chosen = rng.choice(np.flatnonzero(targets == c), size=kc, replace=False)
        bias[chosen] = (c + rng.integers(1, N_CLASSES, size=kc)) % N_CLASSES
    return bias


def unbiased_colours(targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bias labels independent of the digit: within each class every colour equally often (+-1)."""
    bias = np.empty_like(targets)
    for c in np.unique(targets):
        idx = rng.permutation(np.flatnonzero(targets == c))
        bias[idx] = np.resize(rng.permutation(N_CLASSES), len(idx))
    return bias


# --------------------------------------------------------------------------- rendering
def _bilinear_weights(coords: np.ndarray, n_src: int) -> np.ndarray:
    """(..., m) source coordinates (pixel i centred at i) -> (..., m, n_src) bilinear weights.

    The tent kernel max(0, 1 - |x - i|) is bilinear interpolation with zeros outside the source.
    """
    return np.maximum(0.0, 1.0 - np.abs(coords[..., None] - np.arange(n_src, dtype=np.float32)))


def render_glyphs(sources: np.ndarray, rng: np.random.Generator, *, size: int = SIZE) -> np.ndarray:
    """Jitter a batch of (B, h, w) intensity glyphs into (B, size, size) float32 in 0..1.

    Output pixel centre u maps to source coordinate (u - centre - shift) / zoom + h/2, with zoom =
    scale * DIGIT_BOX / h; one bilinear sample per pixel, so upscaling and jitter interpolate once.
    """
    b, h, w = sources.shape
    scale = rng.uniform(*SCALE_RANGE, size=b)
    shift = rng.uniform(-MAX_SHIFT, MAX_SHIFT, size=(b, 2))
    gamma = np.exp(rng.uniform(np.log(GAMMA_RANGE[0]), np.log(GAMMA_RANGE[1]), size=b))
    zoom = (scale * DIGIT_BOX / max(h, w))[:, None]
    centres = np.arange(size, dtype=np.float64) + 0.5 - size / 2.0
    xs = (centres[None] - shift[:, :1]) / zoom + w / 2.0 - 0.5  # (B, size) source column coords
    ys = (centres[None] - shift[:, 1:]) / zoom + h / 2.0 - 0.5  # (B, size) source row coords
    wy = _bilinear_weights(ys.astype(np.float32), h)  # (B, size, h)
    wx = _bilinear_weights(xs.astype(np.float32), w)  # (B, size, w)
    out = wy @ sources.astype(np.float32) @ wx.transpose(0, 2, 1)
    return np.clip(out, 0.0, 1.0) ** gamma[:, None, None].astype(np.float32)


def colourize(glyphs: np.ndarray, bias: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(B, S, S) intensities -> (B, S, S, 3) uint8: intensity * (palette[bias] + colour noise)."""
    colour = PALETTE[bias].astype(np.float32) / 255.0
    colour = colour + rng.normal(0.0, COLOUR_NOISE, size=colour.shape).astype(np.float32)
    rgb = glyphs[..., None] * colour[:, None, None, :]
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def file_name(idx: int, target: int, bias: int, width: int) -> str:
    return f"{idx:0{width}d}_{target}_{bias}.png"


def _render_chunk(job: tuple) -> int:
    """Worker: render one chunk's glyphs once, colour them per variant, write PNGs; returns count."""
    seed, split_code, chunk, sources, variants, root = job
    glyphs = render_glyphs(sources, np.random.default_rng([seed, split_code, chunk]))
    written = 0
    for colour_key, bias, rel_paths in variants:
        rgb = colourize(glyphs, bias, np.random.default_rng([seed, split_code, chunk, colour_key]))
        for img, rel in zip(rgb, rel_paths, strict=True):
            Image.fromarray(img, "RGB").save(os.path.join(root, rel), format="PNG")
        written += len(rel_paths)
    return written


# --------------------------------------------------------------------------- the dataset
def _check_params(severities: Sequence[float], n_train: int, n_valid: int, n_test: int) -> list[float]:
    for name, n in (("n_train", n_train), ("n_valid", n_valid), ("n_test", n_test)):
        if not isinstance(n, (int, np.integer)) or n < N_CLASSES:
            raise DebiaslabError(f"colored digits: {name} = {n!r}, expected an integer >= {N_CLASSES}")
    sevs = [float(s) for s in severities]
    if not sevs:
        raise DebiaslabError("colored digits: severities is empty, expected e.g. [0.5, 1, 2, 5]")
    for s in sevs:
        if not 0.0 < s < 100.0:
            raise DebiaslabError(f"colored digits: severity {s} is not a percentage in (0, 100)")
    dirs = [severity_dir(s) for s in sevs]
    if len(set(dirs)) != len(dirs):
        raise DebiaslabError(f"colored digits: severities {sevs} repeat a folder name ({dirs})")
    return sevs


def plan_colored_digits(*, severities: Sequence[float] = SEVERITIES, n_train: int, n_valid: int,
                        n_test: int, seed: int, targets: np.ndarray | None = None) -> dict:
    """Every label decision, without rendering: source split, per-split sources, targets, biases.

    Returns {"sources": split -> source indices, "train"/"valid"/"test": {"source", "target",
    "bias"}} where train's "bias" maps each severity's folder name to its bias labels.
    """
    sevs = _check_params(severities, n_train, n_valid, n_test)
    if targets is None:
        targets = load_sources()[1]
    split = split_sources(targets, seed)
    plan: dict = {"sources": split}
    for name, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        src = draw_sources(split[name], n, np.random.default_rng([seed, 20, SPLIT_CODES[name]]))
        plan[name] = {"source": src, "target": targets[src]}
    y = plan["train"]["target"]
    plan["train"]["bias"] = {
        severity_dir(s): conflicting_colours(y, s, np.random.default_rng([seed, 10, _colour_key(s)]))
        for s in sevs}
    for name in ("valid", "test"):
        rng = np.random.default_rng([seed, 11, SPLIT_CODES[name]])
        plan[name]["bias"] = unbiased_colours(plan[name]["target"], rng)
    return plan


def _colour_key(pct: float) -> int:
    """Seed component of a severity: depends on its value only, so adding one changes no other."""
    return 1 + int(round(pct * 1000))


def _rel_path(split: str, sub: str | None, idx: int, target: int, bias: int, width: int) -> str:
    name = file_name(idx, target, bias, width)
    if split == "valid":
        return f"valid/{name}"
    if split == "test":
        return f"test/{target}/{name}"
    return f"{split}/{sub}/{target}/{name}"


def write_colored_digits(out_dir: str | Path, *, severities: Sequence[float] = SEVERITIES,
                         n_train: int = 30000, n_valid: int = 2000, n_test: int = 10000,
                         seed: int = 0, workers: int = 1, progress: bool = True) -> dict:
    """Generate Colored Digits into ``out_dir`` (replaced whole, atomically); return statistics."""
    sevs = _check_params(severities, n_train, n_valid, n_test)
    images, targets = load_sources()
    plan = plan_colored_digits(severities=sevs, n_train=n_train, n_valid=n_valid, n_test=n_test,
                               seed=seed, targets=targets)
    counts: dict[str, int] = {}
    with atomic_path(out_dir, directory=True) as tmp:
        jobs = []
        for split in ("train", "valid", "test"):
            part = plan[split]
            n = len(part["target"])
            width = len(str(n - 1))
            if split == "train":
                colourings = [(_colour_key(s), severity_dir(s)) for s in sevs]
            else:
                colourings = [(0, split)]
            labels = {}
            for colour_key, folder in colourings:
                bias = part["bias"][folder] if split == "train" else part["bias"]
                subs = np.where(bias == part["target"], "align", "conflict")
                paths = [_rel_path(folder, str(subs[i]), i, int(part["target"][i]), int(bias[i]), width)
                         for i in range(n)]
                labels[colour_key] = (bias, paths)
                for sub in (("align", "conflict") if split == "train" else (None,)):
                    key = folder if sub is None else f"{folder}/{sub}"
                    counts[key] = n if sub is None else int(np.sum(subs == sub))
                for d in sorted({os.path.dirname(p) for p in paths}):
                    (tmp / d).mkdir(parents=True, exist_ok=True)
            for chunk, s in enumerate(range(0, n, CHUNK)):
                variants = [(key, bias[s:s + CHUNK], paths[s:s + CHUNK])
                            for key, (bias, paths) in labels.items()]
                jobs.append((seed, SPLIT_CODES[split], chunk, images[part["source"][s:s + CHUNK]],
                             variants, str(tmp)))
        total = n_train * len(sevs) + n_valid + n_test
        with tqdm(total=total, desc="colored digits", unit="img", disable=not progress) as bar:
            if workers > 1 and len(jobs) > 1:
                with ProcessPoolExecutor(workers) as pool:
                    for done in pool.map(_render_chunk, jobs):
                        bar.update(done)
            else:
                for job in jobs:
                    bar.update(_render_chunk(job))
        stats = {
            "seed": seed, "severities": sevs, "n_train": n_train, "n_valid": n_valid,
            "n_test": n_test, "counts": counts, "n_images": total,
            "conflict_fraction": {severity_dir(s): round(counts[f"{severity_dir(s)}/conflict"] / n_train, 5)
                                  for s in sevs},
            "sources": {k: len(v) for k, v in plan["sources"].items()},
        }  # no wall-clock time: a DVC-tracked metrics file must be the same bytes on every rerun
        meta = dict(stats)
        meta["source_split"] = {k: v.tolist() for k, v in plan["sources"].items()}
        meta["protocol"] = {"size": SIZE, "digit_box": DIGIT_BOX, "max_shift": MAX_SHIFT,
                            "scale_range": list(SCALE_RANGE), "gamma_range": list(GAMMA_RANGE),
                            "colour_noise": COLOUR_NOISE, "palette": PALETTE.tolist(),
                            "valid": "unbiased", "test": "unbiased"}
        write_json(tmp / "meta.json", meta)
    return stats
