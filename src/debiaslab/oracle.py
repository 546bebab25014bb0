"""An oracle judge for synthetic data: classifiers trained on an *unbiased* SynthFaces render.

The baseline classifiers label generated images in Ramaswamy et al.'s method, and they are biased
by construction. On SynthFaces we can render a second set in which every attribute is independent
(P = 0.5), train on it, and so judge what the biased classifiers cannot: whether hallucinated labels
are right and whether an edit really flipped the protected attribute. Real CelebA has no oracle.
"""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
from PIL import Image

from .errors import DebiaslabError
from .prepare import crop_resize_image
from .synth import CHUNK, RENDERED_ATTRIBUTES, render_batch, sample_attributes

ORACLE_TAG = 0x0AC1E  # distinguishes the oracle's random streams from those of synthesize


def check_oracle_request(names: list[str], n_images: int, epochs: int) -> None:
    """The oracle can only judge attributes SynthFaces draws, and needs data and epochs."""
    missing = [n for n in names if n not in RENDERED_ATTRIBUTES]
    if missing:
        raise DebiaslabError(f"oracle: SynthFaces does not draw {missing[0]!r} (it draws "
                             f"{', '.join(RENDERED_ATTRIBUTES)}); on real data set oracle.enabled: false")
    if n_images < 20 or epochs < 1:
        raise DebiaslabError(f"oracle: n_images must be at least 20 and epochs at least 1 "
                             f"(got {n_images} and {epochs})")


def render_unbiased(n: int, synth_params, *, image_size: int, seed: int) -> tuple[np.ndarray, dict]:
    """n faces with independent attributes, through the same JPEG, crop and resize as real data.

    Returns (uint8 images (n, S, S, 3), {attribute: 0/1 array}). Rendering parameters (smile depth,
    noise, JPEG quality) are the biased set's, so only the correlations differ.
    """
    params = replace(synth_params, correlations={}, base_rate=0.5)
    # "oracle" in every seed: NumPy pads short seed lists with zeros, so [seed, 2, 0] would
    # otherwise replay the stream SynthFaces used for its own training images ([seed, 2])
    rng = np.random.default_rng([seed, ORACLE_TAG, 1])
    attrs = sample_attributes(n, params.correlations, base_rate=0.5, rng=rng)
    render = {"smile_depth": params.smile_depth, "mouth_jitter": params.mouth_jitter,
              "noise_std": params.noise_std}
    images = np.empty((n, image_size, image_size, 3), np.uint8)
    for start in range(0, n, CHUNK):
        chunk = {k: v[start:start + CHUNK] for k, v in attrs.items()}
        rng_chunk = np.random.default_rng([seed, ORACLE_TAG, 2, start])
        for k, face in enumerate(render_batch(chunk, rng_chunk, **render)):
            images[start + k] = _jpeg_crop_resize(face, params.jpeg_quality, image_size)
    return images, attrs


def _jpeg_crop_resize(face: np.ndarray, quality: int, size: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(face).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as img:
        return crop_resize_image(img, size)


def train_oracle(images: np.ndarray, attrs: dict, names: list[str], train_params, *, model_path: str,
                 live_dir: str, holdout: float = 0.15) -> dict:
    """One multi-label classifier over ``names`` on the unbiased render; returns the accuracy on the
    held-out part (which also picks the best epoch, so it is slightly optimistic)."""
    from .data import ArrayDataset
    from .train import predict_scores, train_and_save

    y = np.stack([attrs[n] for n in names], 1).astype(np.float32)
    cut = int(len(images) * (1 - holdout))
    method, _ = train_and_save("erm", len(names), ArrayDataset(images[:cut], y[:cut]),
                               ArrayDataset(images[cut:], y[cut:]), train_params,
                               model_path=model_path, live_dir=live_dir, attributes=names)
    pred = predict_scores(method, ArrayDataset(images[cut:], y[cut:])) > 0.5
    return {n: round(float(np.mean(pred[:, k] == y[cut:, k])), 4) for k, n in enumerate(names)}


def save_disabled(path: str, live_dir: str) -> None:
    """The oracle stage's outputs when there is no oracle (real data): a marker, not a model, and
    an empty training log."""
    from dvclive import Live

    from .io import save_torch

    save_torch(path, {"enabled": False})
    with Live(live_dir, dvcyaml=False, save_dvc_exp=False) as live:
        live.log_metric("train/epochs", 0)


def load_oracle(path: str, device):
    """The oracle method, or None when the oracle stage ran with oracle.enabled = false."""
    from pathlib import Path

    from .checkpoints import load_weights_file
    from .train import method_from_checkpoint

    if not Path(path).is_file():
        raise DebiaslabError(f"{path}: not found (run the oracle stage)")
    ckpt = load_weights_file(path, device, what="oracle checkpoint")
    if isinstance(ckpt, dict) and ckpt.get("enabled") is False:
        return None
    return method_from_checkpoint(ckpt, path, device)


def oracle_labels(oracle, images: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """0/1 labels by the oracle (threshold 0.5: it was trained on balanced attributes)."""
    from .data import ArrayDataset
    from .train import predict_scores

    method, meta = oracle
    trained_on = meta.get("attributes", [])
    missing = [n for n in names if n not in trained_on]
    if missing:
        raise DebiaslabError(f"models/oracle/model.pt: no oracle for {missing[0]!r} (trained on "
                             f"{', '.join(trained_on)}); rerun the oracle stage")
    scores = predict_scores(method, ArrayDataset(images, np.zeros((len(images), len(trained_on)))))
    return {n: (scores[:, trained_on.index(n)] > 0.5).astype(np.int64) for n in names}
