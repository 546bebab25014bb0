"""An oracle judge for synthetic data: classifiers trained on an *unbiased* SynthFaces render.

The baseline classifiers label generated images in Ramaswamy et al.'s method, and they are biased
by construction. On SynthFaces we can render a second set in which every attribute is independent
(P = 0.5), train on it, and so judge what the biased classifiers cannot: whether hallucinated labels
are right and whether an edit really flipped the protected attribute. Real CelebA has no oracle.

The same rendering path gives the balanced test split (``render_balanced``): equal (target,
protected) cells, so that the evaluation's fairness gaps have narrow intervals.
"""

from __future__ import annotations

import io
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
from PIL import Image

from .errors import DebiaslabError
from .io import atomic_path, save_torch, write_json
from .prepare import crop_resize_image
from .synth import CHUNK, RENDERED_ATTRIBUTES, render_batch, render_settings, sample_attributes

ORACLE_TAG = 0x0AC1E  # distinguishes the oracle's random streams from those of synthesize
# ... and this the balanced test split's (render_balanced) from both; above any chunk index of
# synthesize's [seed, chunk] streams (params.MAX_IMAGES / CHUNK), so no seed list can coincide
BALANCED_TAG = 0xBA1A4CE


def check_oracle_request(names: list[str], n_images: int, epochs: int) -> None:
    """The oracle can only judge attributes SynthFaces draws, and needs data and epochs."""
    check_rendered(names, "oracle")
    if n_images < 20 or epochs < 1:
        raise DebiaslabError(f"oracle: n_images must be at least 20 and epochs at least 1 "
                             f"(got {n_images} and {epochs})")


def check_rendered(names: list[str], group: str) -> None:
    """Only attributes SynthFaces draws can be rendered; anything else means real data, where
    ``group`` (a params group with an ``enabled`` switch) must be off."""
    missing = [n for n in names if n not in RENDERED_ATTRIBUTES]
    if missing:
        raise DebiaslabError(f"SynthFaces does not draw {missing[0]!r} (it draws "
                             f"{', '.join(RENDERED_ATTRIBUTES)}); on real data set {group}.enabled: false")


def render_unbiased(n: int, synth_params, *, image_size: int, seed: int,
                    workers: int = 1) -> tuple[np.ndarray, dict]:
    """n faces with independent attributes, through the same JPEG, crop and resize as real data.

    Returns (uint8 images (n, S, S, 3), {attribute: 0/1 array}). Rendering parameters (smile depth,
    noise, JPEG quality) are the biased set's, so only the correlations differ.
    """
    # "oracle" in every seed: NumPy pads short seed lists with zeros, so [seed, 2, 0] would
    # otherwise replay the stream SynthFaces used for its own training images ([seed, 2])
    rng = np.random.default_rng([seed, ORACLE_TAG, 1])
    attrs = sample_attributes(n, {}, base_rate=0.5, rng=rng)
    images = render_faces(attrs, synth_params, image_size=image_size, stream=(seed, ORACLE_TAG, 2),
                          workers=workers)
    return images, attrs


def render_balanced(per_cell: int, synth_params, *, target: str, protected: str, image_size: int,
                    seed: int, workers: int = 1) -> tuple[np.ndarray, dict]:
    """A test split with exactly ``per_cell`` faces in each (target, protected) cell.

    Equal cells make the group rates behind DEO and the other gaps equally well measured. Rendered
    like ``render_unbiased``, on random streams of its own (BALANCED_TAG): neither the oracle's
    training faces nor SynthFaces' own. Returns (uint8 images (4 * per_cell, S, S, 3),
    {attribute: 0/1 array}).
    """
    attrs = balanced_attributes(per_cell, target=target, protected=protected, seed=seed)
    images = render_faces(attrs, synth_params, image_size=image_size,
                          stream=(seed, BALANCED_TAG, 2), workers=workers)
    return images, attrs


def balanced_attributes(per_cell: int, *, target: str, protected: str, seed: int) -> dict:
    """The balanced split's labels: (target, protected) cells of exactly ``per_cell``, in shuffled
    order; every other attribute independent with P = 0.5 (as in the oracle's set), so none but
    the protected one can stand in for the target."""
    check_rendered([target, protected], "balanced_test")
    if target == protected or per_cell < 1:
        raise DebiaslabError(f"the balanced split needs a target other than the protected attribute "
                             f"and per_cell >= 1 (got {target!r}, {protected!r}, {per_cell})")
    rng = np.random.default_rng([seed, BALANCED_TAG, 1])
    attrs = sample_attributes(4 * per_cell, {}, base_rate=0.5, rng=rng)
    cells = rng.permutation(np.repeat(np.arange(4), per_cell))  # cell = 2 * target + protected
    attrs[target], attrs[protected] = (cells // 2).astype(np.int8), (cells % 2).astype(np.int8)
    return attrs


def render_faces(attrs: dict[str, np.ndarray], synth_params, *, image_size: int,
                 stream: tuple[int, ...], workers: int = 1) -> np.ndarray:
    """Render faces with the given attributes as prepared data: uint8 (n, S, S, 3).

    Chunks of CHUNK faces are the unit of seeding (chunk at ``start`` draws its nuisance and noise
    from ``default_rng([*stream, start])``), so the pixels do not depend on ``workers``.
    """
    n = len(attrs["Smiling"])
    render = render_settings(synth_params)
    jobs = [({k: v[start:start + CHUNK] for k, v in attrs.items()}, (*stream, start), render,
             synth_params.jpeg_quality, image_size) for start in range(0, n, CHUNK)]
    if workers > 1 and len(jobs) > 1:
        # spawn, not fork: the caller may hold threads (torch, a test runner) a fork would copy
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            chunks = list(pool.map(_render_chunk, jobs))
    else:
        chunks = [_render_chunk(job) for job in jobs]
    return np.concatenate(chunks) if chunks else np.empty((0, image_size, image_size, 3), np.uint8)


def _render_chunk(job: tuple) -> np.ndarray:
    attrs, key, render, quality, size = job
    faces = render_batch(attrs, np.random.default_rng(list(key)), **render)
    return np.stack([jpeg_crop_resize(face, quality, size) for face in faces])


def jpeg_crop_resize(face: np.ndarray, quality: int, size: int) -> np.ndarray:
    """One rendered face as the prepared data hold it: JPEG-compressed like SynthFaces' files,
    then CelebA's crop and resize (uint8 (S, S, 3))."""
    buffer = io.BytesIO()
    Image.fromarray(face).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as img:
        return crop_resize_image(img, size)


def write_balanced_split(out_dir, images: np.ndarray, attrs: dict[str, np.ndarray], *,
                         meta: dict) -> None:
    """The split in data/prepared's layout (test.npy; test_labels.csv: an image name, then every
    attribute as 0/1, sorted as in the CelebA files), so ``PreparedSplit(out_dir, "test")`` reads it
    like the real test split. The names are labels only: no image files exist."""
    table = pd.DataFrame({name: attrs[name] for name in sorted(attrs)})
    table.insert(0, "image", [f"balanced_{i + 1:06d}.jpg" for i in range(len(images))])
    with atomic_path(out_dir, directory=True) as tmp:
        np.save(tmp / "test.npy", images)
        table.to_csv(tmp / "test_labels.csv", index=False)
        write_json(tmp / "meta.json", meta)


def write_balanced_disabled(out_dir) -> None:
    """The stage's output without a split (real data): the folder DVC tracks, with a marker only,
    so evaluate (which checks for test.npy) sees no balanced split."""
    with atomic_path(out_dir, directory=True) as tmp:
        write_json(tmp / "disabled.json", {"enabled": False})


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
