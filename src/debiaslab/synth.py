"""SynthFaces: cartoon faces with CelebA-named binary attributes, written in CelebA's on-disk format.

Every attribute is drawn as a soft-edged shape in face coordinates (origin between the eyes and
mouth, one unit = one pixel at scale 1), so position and scale jitter move whole faces. Shapes are
rendered for a whole batch at once with NumPy broadcasting, each inside its bounding box only.

Attributes differ on purpose in how salient they are: Eyeglasses, Wearing_Hat and Blond_Hair
cover many pixels with strong contrast; Smiling bends a thin mouth line by ``smile_depth`` pixels
(about one pixel after the 128 -> 32 crop and resize), so a classifier finds a skewed protected
attribute easier to see than the target and leans on it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .io import atomic_path

WIDTH, HEIGHT = 178, 218  # CelebA aligned images
CENTER = (89.0, 124.0)  # face centre (x, y) inside the 128x128 crop box (x 25-152, y 57-184)
RENDERED_ATTRIBUTES = (
    "Bangs", "Blond_Hair", "Bushy_Eyebrows", "Eyeglasses", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "Pale_Skin", "Rosy_Cheeks", "Smiling", "Wearing_Hat",
)
CHUNK = 64  # images rendered together; also the unit of seeding, so output ignores worker count


# --------------------------------------------------------------------------- attribute sampling
def sample_attributes(n: int, correlations: dict, *, base_rate: float,
                      rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw 0/1 attributes; each (target, protected, skew) pair gets the requested skew.

    A protected attribute is drawn first with P=0.5, then each of its targets with
    P(t=1 | g=1) = skew and P(t=1 | g=0) = 1 - skew, which gives P(g=1 | t=1) = P(g=0 | t=0) = skew
    exactly, and lets one protected attribute drive several targets (as Male does in CelebA).
    Every other attribute is independent with P = ``base_rate``.
    """
    check_correlations(correlations)
    attrs = {}
    for name in RENDERED_ATTRIBUTES:
        attrs[name] = (rng.random(n) < base_rate).astype(np.int8)
    for protected in sorted({c.protected for c in correlations.values()}):
        attrs[protected] = (rng.random(n) < 0.5).astype(np.int8)
    for target in sorted(correlations):
        corr = correlations[target]
        p = np.where(attrs[corr.protected] == 1, corr.skew, 1.0 - corr.skew)
        attrs[target] = (rng.random(n) < p).astype(np.int8)
    return attrs


def check_correlations(correlations: dict) -> None:
    from .errors import DebiaslabError

    valid = ", ".join(RENDERED_ATTRIBUTES)
    for target, corr in correlations.items():
        for name in (target, corr.protected):
            if name not in RENDERED_ATTRIBUTES:
                raise DebiaslabError(
                    f"synthesize.correlations: {name!r} is not rendered by SynthFaces (valid: {valid})")
        if corr.protected in correlations:
            raise DebiaslabError(f"synthesize.correlations: {corr.protected!r} is protected in one "
                                 "pair and a target in another; chains are not supported")
        if target == corr.protected:
            raise DebiaslabError(f"synthesize.correlations.{target}: target equals protected")


# --------------------------------------------------------------------------- nuisance sampling
@dataclass
class Nuisance:
    """Per-image variation that carries no label."""

    cx: np.ndarray
    cy: np.ndarray
    scale: np.ndarray
    skin: np.ndarray  # (B, 3) RGB
    hair: np.ndarray
    hat: np.ndarray
    frames: np.ndarray  # glasses frame colour
    bg_top: np.ndarray
    bg_bottom: np.ndarray
    mouth_bend: np.ndarray  # label-free bend of every mouth, px
    mouth_width: np.ndarray

    @classmethod
    def sample(cls, n: int, pale: np.ndarray, blond: np.ndarray, rng, mouth_jitter: float,
               mouth_spread: str = "uniform"):
        """Draw every field from ``rng``: a NumPy Generator, or anything with its ``random``,
        ``normal``, ``uniform`` and ``integers`` methods (the renderer generator passes latents:
        :class:`debiaslab.renderer_gan.LatentDraws`). The label-free mouth bend is
        U(-mouth_jitter, mouth_jitter), or N(0, mouth_jitter²) with ``mouth_spread="normal"``."""
        u = rng.random
        tone = u(n)[:, None]  # one scalar tone per face, from tan to dark brown
        skin = (1 - tone) * np.array([205, 160, 125]) + tone * np.array([120, 80, 55])
        pale_skin = np.array([245, 226, 214]) + rng.normal(0, 5, (n, 3))
        skin = np.where(pale[:, None] == 1, pale_skin, skin + rng.normal(0, 6, (n, 3)))
        dark = np.array([[30, 20, 15], [70, 45, 25], [110, 60, 30], [50, 35, 30]])
        hair = dark[rng.integers(0, len(dark), n)] + rng.normal(0, 8, (n, 3))
        blond_hair = np.array([225, 195, 110]) + rng.normal(0, 10, (n, 3))
        hair = np.where(blond[:, None] == 1, blond_hair, hair)
        return cls(
            cx=CENTER[0] + rng.uniform(-6, 6, n), cy=CENTER[1] + rng.uniform(-6, 6, n),
            scale=rng.uniform(0.9, 1.1, n), skin=skin, hair=hair,
            hat=rng.uniform(20, 235, (n, 3)), frames=rng.uniform(0, 60, (n, 1)).repeat(3, 1),
            bg_top=rng.uniform(40, 230, (n, 3)), bg_bottom=rng.uniform(40, 230, (n, 3)),
            mouth_bend=mouth_bends(rng, n, mouth_jitter, mouth_spread), mouth_width=rng.uniform(11, 15, n),
        )


MOUTH_SPREADS = ("uniform", "normal")


def check_mouth_spread(spread) -> str:
    if spread not in MOUTH_SPREADS:
        raise ValueError(f"mouth_spread: expected one of {', '.join(MOUTH_SPREADS)}, got {spread!r}")
    return spread


def mouth_bends(rng, n: int, jitter: float, spread: str) -> np.ndarray:
    """The label-free bend of n mouths, px. Uniform: any face within ``jitter`` of the smile's
    bend is ambiguous alike, so a classifier's bias jumps with the overlap. Normal: ambiguity fades
    smoothly with distance, so the bias grows smoothly with the training skew."""
    if check_mouth_spread(spread) == "normal":
        return rng.normal(0.0, jitter, n)
    return rng.uniform(-jitter, jitter, n)


RENDER_SETTINGS = ("smile_depth", "mouth_jitter", "mouth_spread", "mouth_thickness", "noise_std")


def render_settings(params) -> dict:
    """The keyword arguments of :func:`render_batch` that ``synthesize`` params set: one place for
    every renderer of SynthFaces faces (the data, the oracle's unbiased set, the renderer generator).
    ``params``: SynthesizeParams, or a mapping with these keys (a renderer checkpoint's); checked."""
    get = params.get if isinstance(params, dict) else lambda key: getattr(params, key)
    return {key: check_mouth_spread(get(key)) if key == "mouth_spread" else float(get(key))
            for key in RENDER_SETTINGS}


# --------------------------------------------------------------------------- shapes
# Each shape maps face coordinates (u, v) of a whole batch, shape (B, h, w), to a signed distance
# in face units (negative inside). Per-image parameters arrive as (B, 1, 1) arrays.
def _ellipse(u, v, cu, cv, a, b):
    r = np.sqrt(((u - cu) / a) ** 2 + ((v - cv) / b) ** 2)
    return (r - 1.0) * np.minimum(a, b)


def _ring(u, v, cu, cv, radius, thickness):
    return np.abs(np.hypot(u - cu, v - cv) - radius) - thickness / 2


def _box(u, v, u0, u1, v0, v1):
    return np.maximum(np.maximum(u0 - u, u - u1), np.maximum(v0 - v, v - v1))


def _curve(u, v, v0, half_width, bend, thickness):
    """A mouth: v = v0 + bend * (1 - (u / half_width)^2) for |u| <= half_width (bend > 0: smile)."""
    centre = v0 + bend * (1 - (u / half_width) ** 2)
    return np.maximum(np.abs(v - centre) - thickness / 2, np.abs(u) - half_width)


@dataclass
class Layer:
    """One painted shape: its bounding box in face units, distance, colour and on/off per image."""

    box: tuple[float, float, float, float]  # u0, u1, v0, v1
    distance: Callable[[np.ndarray, np.ndarray], np.ndarray]
    color: np.ndarray  # (B, 3)
    on: np.ndarray | None = None  # (B,) 0/1; None = every image


def _both_sides(make: Callable[[int], Layer]) -> list[Layer]:
    """A left/right pair of layers (eyes, brows, cheeks, glasses): ``make(side)``, side = ±1."""
    return [make(-1), make(1)]


def _layers(a: dict[str, np.ndarray], nz: Nuisance, smile_depth: float,
            mouth_thickness: float) -> list[Layer]:
    """The shapes of a face, back to front. Attribute layers are switched on per image by ``a``."""
    def col(x):  # (B,) -> (B, 1, 1) for broadcasting against (B, h, w)
        return np.asarray(x, dtype=np.float32)[:, None, None]

    n = len(nz.cx)
    bends = nz.mouth_bend + smile_depth * a["Smiling"]
    hw, bend = col(nz.mouth_width), col(bends)
    # the mouth's and the open mouth's boxes: the defaults' fixed boxes, grown to the deepest bend
    # of the batch (a normal spread or a deep smile reaches past them)
    low, high = min(float(bends.min(initial=0.0)), 0.0), max(float(bends.max(initial=0.0)), 0.0)
    mouth_box = (-16, 16, min(14.0, 21 + low - mouth_thickness), max(32.0, 21 + high + mouth_thickness))
    open_box = (-10, 10, min(19.0, 22 + 0.6 * low - 3.6), max(30.0, 22 + 0.6 * high + 3.6))
    brow = col(2.0 + 2.5 * a["Bushy_Eyebrows"])  # eyebrow thickness
    eye_b = col(np.where(a["Narrow_Eyes"] == 1, 1.6, 3.6))  # eye half-height

    def flat(rgb):
        return np.tile(np.asarray(rgb, np.float32), (n, 1))

    lips, black, white, pink = flat([150, 50, 55]), flat([25] * 3), flat([240] * 3), \
        flat([235, 110, 120])
    shade = nz.skin * 0.8

    def eye(side):
        return Layer((side * 14 - 8, side * 14 + 8, -14, -2),
                     lambda u, v: _ellipse(u, v, side * 14, -8, 6, eye_b), white)

    def pupil(side):
        return Layer((side * 14 - 4, side * 14 + 4, -12, -4),
                     lambda u, v: _ellipse(u, v, side * 14, -8, 2.2, 2.2), black)

    def eyebrow(side):
        return Layer((side * 14 - 9, side * 14 + 9, -22, -14),
                     lambda u, v: _box(u, v, side * 14 - 7, side * 14 + 7,
                                       -19 - brow / 2, -19 + brow / 2), nz.hair * 0.6)

    def cheek(side):
        return Layer((side * 21 - 8, side * 21 + 8, 1, 15),
                     lambda u, v: _ellipse(u, v, side * 21, 8, 6, 5), pink, a["Rosy_Cheeks"])

    def lens_rim(side):
        return Layer((side * 14 - 12, side * 14 + 12, -20, 4),
                     lambda u, v: _ring(u, v, side * 14, -8, 10, 2.6), nz.frames,
                     a["Eyeglasses"])

    def hat(u, v):  # a dome cut off at the brim line, plus the brim
        dome = np.maximum(_ellipse(u, v, 0, -44, 40, 40), v + 40)
        return np.minimum(dome, _box(u, v, -54, 54, -44, -36))

    def fringe(u, v):  # hair over the forehead, cut straight above the eyebrows
        return np.maximum(_ellipse(u, v, 0, -8, 40, 46), v + 24)

    return [
        Layer((-50, 50, -64, 20), lambda u, v: _ellipse(u, v, 0, -8, 47, 56), nz.hair),
        Layer((-15, 15, 30, 95), lambda u, v: _box(u, v, -13, 13, 30, 95), shade),  # neck
        Layer((-40, 40, -52, 52), lambda u, v: _ellipse(u, v, 0, 0, 37, 50), nz.skin),
        Layer((-22, 22, 0, 8), lambda u, v: _box(u, v, -1, 1, -2, 7), shade),  # nose
        *_both_sides(eye), *_both_sides(pupil), *_both_sides(eyebrow),
        Layer((-16, 16, 13, 18), lambda u, v: _box(u, v, -11, 11, 14, 17), nz.hair * 0.7,
              a["Mustache"]),
        Layer(mouth_box, lambda u, v: _curve(u, v, 21, hw, bend, mouth_thickness), lips),
        Layer(open_box, lambda u, v: _ellipse(u, v, 0, 22 + 0.6 * bend, 7, 2.6),
              black, a["Mouth_Slightly_Open"]),
        *_both_sides(cheek),
        Layer((-40, 40, -52, -22), fringe, nz.hair, a["Bangs"]),
        *_both_sides(lens_rim),
        Layer((-6, 6, -10, -6), lambda u, v: _box(u, v, -4, 4, -9, -7), nz.frames,
              a["Eyeglasses"]),  # bridge
        Layer((-56, 56, -90, -34), hat, nz.hat, a["Wearing_Hat"]),
    ]


def render_batch(attrs: dict[str, np.ndarray], rng: np.random.Generator | None, *,
                 smile_depth: float, mouth_jitter: float, noise_std: float,
                 mouth_spread: str = "uniform", mouth_thickness: float = 2.2,
                 nuisance: Nuisance | None = None, noise: np.ndarray | None = None) -> np.ndarray:
    """Render one batch of faces: uint8 array (B, 218, 178, 3).

    Every mouth, a line ``mouth_thickness`` px thick, bends by a label-free amount
    (:func:`mouth_bends`: ``mouth_jitter`` px wide, ``mouth_spread`` uniform or normal) and a
    smile adds ``smile_depth`` px. Where the two overlap, some faces are ambiguous, as in CelebA's
    Smiling labels, and a classifier resolves them with whatever correlates with the label.
    The nuisance and the pixel noise (standard normal, (B, 218, 178, 3)) are drawn from ``rng``
    unless given: the renderer generator derives both from its latents.
    """
    n = len(attrs["Smiling"])
    nz = nuisance if nuisance is not None else Nuisance.sample(
        n, attrs["Pale_Skin"], attrs["Blond_Hair"], rng, mouth_jitter, mouth_spread)
    ramp = np.linspace(0, 1, HEIGHT, dtype=np.float32)[None, :, None, None]
    canvas = (nz.bg_top[:, None, None, :] * (1 - ramp) + nz.bg_bottom[:, None, None, :] * ramp)
    canvas = np.broadcast_to(canvas, (n, HEIGHT, WIDTH, 3)).astype(np.float32)
    s_max = float(nz.scale.max())
    for layer in _layers(attrs, nz, smile_depth, mouth_thickness):
        u0, u1, v0, v1 = layer.box
        # Rows/columns covering this layer in every image of the batch, plus the soft edge.
        y0 = max(int(np.floor(nz.cy.min() + min(v0 * s_max, v0 * nz.scale.min()))) - 2, 0)
        y1 = min(int(np.ceil(nz.cy.max() + max(v1 * s_max, v1 * nz.scale.min()))) + 3, HEIGHT)
        x0 = max(int(np.floor(nz.cx.min() + min(u0 * s_max, u0 * nz.scale.min()))) - 2, 0)
        x1 = min(int(np.ceil(nz.cx.max() + max(u1 * s_max, u1 * nz.scale.min()))) + 3, WIDTH)
        if y0 >= y1 or x0 >= x1:
            continue
        ys = np.arange(y0, y1, dtype=np.float32)[None, :, None]
        xs = np.arange(x0, x1, dtype=np.float32)[None, None, :]
        s = nz.scale.astype(np.float32)[:, None, None]
        u = (xs - nz.cx.astype(np.float32)[:, None, None]) / s
        v = (ys - nz.cy.astype(np.float32)[:, None, None]) / s
        # Distance in face units -> pixels; 1-pixel soft edge for anti-aliasing.
        alpha = np.clip(0.5 - layer.distance(u, v) * s, 0.0, 1.0)
        if layer.on is not None:
            alpha = alpha * layer.on.astype(np.float32)[:, None, None]
        region = canvas[:, y0:y1, x0:x1]
        color = layer.color.astype(np.float32)[:, None, None, :]
        region += alpha[..., None] * (color - region)
    if noise is None:
        canvas += rng.normal(0.0, noise_std, canvas.shape).astype(np.float32)
    else:
        canvas += np.float32(noise_std) * noise
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- CelebA writer
def image_name(i: int) -> str:
    return f"{i + 1:06d}.jpg"


def _render_chunk(job: tuple) -> int:
    """Worker: render images [start, stop) and write them as JPEGs; returns how many."""
    start, attrs, seed, render, quality, image_dir = job
    rng = np.random.default_rng([seed, start // CHUNK])
    images = render_batch(attrs, rng, **render)
    for k, img in enumerate(images):
        Image.fromarray(img).save(os.path.join(image_dir, image_name(start + k)), quality=quality)
    return len(images)


def partition_ids(n: int, split: list[float]) -> np.ndarray:
    """0/1/2 for train/val/test in file order, as in CelebA (train first, then val, then test)."""
    n_train = int(round(n * split[0]))
    n_val = int(round(n * split[1]))
    return np.repeat(np.array([0, 1, 2], np.int8), [n_train, n_val, n - n_train - n_val])


def write_attr_file(path: Path, names: list[str], attrs: dict[str, np.ndarray]) -> None:
    """CelebA's list_attr_celeba.txt: count, header of names, then ``name v1 v2 ...`` in -1/1."""
    n = len(names)
    columns = sorted(attrs)
    values = np.stack([attrs[c] for c in columns], 1).astype(np.int64) * 2 - 1
    cells = np.where(values > 0, " 1", "-1")
    lines = [f"{names[i]} " + " ".join(cells[i]) for i in range(n)]
    path.write_text(f"{n}\n" + " ".join(columns) + " \n" + "\n".join(lines) + "\n")


def write_synthfaces(out_dir: str | Path, params, *, progress: bool = True) -> dict:
    """Render ``params.n_images`` faces into ``out_dir`` in CelebA's layout; return statistics."""
    rng = np.random.default_rng(params.seed)
    n = params.n_images
    attrs = sample_attributes(n, params.correlations, base_rate=params.base_rate, rng=rng)
    names = [image_name(i) for i in range(n)]
    with atomic_path(out_dir, directory=True) as tmp:
        image_dir = tmp / "img_align_celeba"
        image_dir.mkdir()
        render = render_settings(params)
        jobs = [(s, {k: v[s:s + CHUNK] for k, v in attrs.items()}, params.seed, render,
                 params.jpeg_quality, str(image_dir)) for s in range(0, n, CHUNK)]
        bar = tqdm(total=n, desc="synthesize", unit="img", disable=not progress)
        if params.workers > 1:
            with ProcessPoolExecutor(params.workers) as pool:
                for done in pool.map(_render_chunk, jobs):
                    bar.update(done)
        else:
            for job in jobs:
                bar.update(_render_chunk(job))
        bar.close()
        write_attr_file(tmp / "list_attr_celeba.txt", names, attrs)
        part = partition_ids(n, params.split)
        (tmp / "list_eval_partition.txt").write_text(
            "".join(f"{name} {p}\n" for name, p in zip(names, part, strict=True)))
    # P(target == protected), the skew as written: the labels of the files are these arrays
    realised = {f"{t}|{c.protected}": round(float(np.mean(attrs[t] == attrs[c.protected])), 4)
                for t, c in params.correlations.items()}
    # no wall-clock time in the result: it lands in a DVC-tracked metrics file, which must be the
    # same bytes on every rerun (the stage prints its time instead)
    return {"n_images": n,
            "positive_rate": {k: round(float(v.mean()), 4) for k, v in sorted(attrs.items())},
            "realised_skew": realised}
