"""Crop, resize and pack a CelebA-format folder into uint8 arrays, once.

Each split becomes ``<split>.npy`` of shape (N, S, S, 3), written chunk by chunk through a plain
file handle (the .npy header first, then rows), so memory stays flat however large the dataset;
training then memory-maps it instead of decoding JPEGs every epoch.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from .celeba import IMAGE_DIR, SPLITS, CelebAIndex, resolve_image
from .errors import DebiaslabError
from .io import atomic_path, write_json

SOURCE_SIZE = (178, 218)  # (W, H) of CelebA's aligned images
CROP_BOX = (25, 57, 153, 185)  # (left, top, right, bottom): columns 25-152, rows 57-184
CHUNK = 256


def crop_resize(path: Path, size: int) -> np.ndarray:
    """Decode one aligned face, apply the CelebA crop, resize to ``size``; uint8 (S, S, 3)."""
    try:
        with Image.open(path) as img:
            if img.size != SOURCE_SIZE:
                raise DebiaslabError(f"{path}: image is {img.size[0]}x{img.size[1]}, expected "
                                     f"{SOURCE_SIZE[0]}x{SOURCE_SIZE[1]} (CelebA aligned)")
            return crop_resize_image(img, size)
    except FileNotFoundError:
        raise DebiaslabError(f"{path}: image file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DebiaslabError(f"{path}: cannot decode image ({err})") from None


def crop_resize_image(img: Image.Image, size: int) -> np.ndarray:
    """The CelebA crop and resize of one decoded image (shared with in-memory renders)."""
    return _crop_then_resize(img, CROP_BOX, size)


def square_resize_image(img: Image.Image, size: int) -> np.ndarray:
    """The central square of one decoded image of any size, resized as the CelebA crop is (images
    that are not CelebA-aligned: a multi-label table's, a user's generated folders)."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return _crop_then_resize(img, (left, top, left + side, top + side), size)


def _crop_then_resize(img: Image.Image, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    # Crop exactly first, as the original pipeline did: resizing with a box would let the filter
    # reach pixels outside the crop. reducing_gap box-averages by integer factors before the
    # final resample, which is both faster and a proper area average.
    out = img.convert("RGB").crop(box).resize((size, size), Image.Resampling.BILINEAR,
                                              reducing_gap=2.0)
    return np.asarray(out, dtype=np.uint8)


def decode_image(path: Path, to_array: Callable[[Image.Image], np.ndarray]) -> np.ndarray:
    """``to_array`` of the image file at ``path``; a missing, oversized or undecodable file is one
    line naming it."""
    try:
        with Image.open(path) as img:
            return to_array(img)
    except FileNotFoundError:
        raise DebiaslabError(f"{path}: image file not found") from None
    except Image.DecompressionBombError as err:
        raise DebiaslabError(f"{path}: refused: image too large ({err})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DebiaslabError(f"{path}: cannot decode image ({err})") from None


def _crop_chunk(job: tuple[Path, list[str], int]) -> np.ndarray:
    image_dir, names, size = job  # only what the worker needs: pickled once per chunk
    return np.stack([crop_resize(resolve_image(image_dir, n), size) for n in names])


class NpyWriter:
    """Write an .npy file of known shape row-chunk by row-chunk, without holding it in memory.

    Use as a context manager; on a clean exit it checks that every promised row was written.
    """

    def __init__(self, path: Path, shape: tuple[int, ...], dtype=np.uint8):
        self.file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self.shape, self.dtype, self.rows = shape, np.dtype(dtype), 0
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": shape}
        np.lib.format.write_array_header_1_0(self.file, header)

    def write(self, rows: np.ndarray) -> None:
        assert rows.shape[1:] == self.shape[1:] and rows.dtype == self.dtype
        self.file.write(np.ascontiguousarray(rows).tobytes())
        self.rows += len(rows)

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.file.close()
        if exc_type is None and self.rows != self.shape[0]:
            raise RuntimeError(f"wrote {self.rows} rows, header says {self.shape[0]}")


def _in_order(pool: ProcessPoolExecutor, fn, jobs: list, *, window: int) -> Iterator:
    """Results of ``fn`` over ``jobs`` in order, at most ``window`` submitted ahead of the reader.

    (``Executor.map`` submits every job at once, so a slow reader would let decoded chunks pile
    up in memory; this keeps memory bounded whatever the dataset size.)
    """
    pending: deque = deque()
    try:
        for job in jobs:
            pending.append(pool.submit(fn, job))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def pack_chunks(path: Path, shape: tuple[int, ...], decode: Callable[[object], np.ndarray],
                jobs: list, *, workers: int, desc: str, progress: bool = True) -> None:
    """Decode ``jobs`` (each a chunk of images) with ``workers`` processes and stream the rows,
    in order, into the .npy file ``path`` of ``shape``; memory stays bounded."""
    with NpyWriter(path, shape) as writer, \
            tqdm(total=shape[0], desc=desc, unit="img", disable=not progress) as bar:
        if workers > 1 and len(jobs) > 1:
            # spawn, not fork: a forked worker would inherit (and, touching it, copy) the
            # parent's label tables, so its memory would grow with the dataset
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                chunks = _in_order(pool, decode, jobs, window=2 * workers)
                for chunk in chunks:
                    writer.write(chunk)
                    bar.update(len(chunk))
        else:
            for job in jobs:
                chunk = decode(job)
                writer.write(chunk)
                bar.update(len(chunk))


def pack_split(index: CelebAIndex, split: str, path: Path, size: int, *, workers: int,
               progress: bool = True) -> int:
    rows = index.split_indices(split)
    names = [index.image_names[i] for i in rows]
    jobs = [(index.image_dir, names[s:s + CHUNK], size) for s in range(0, len(names), CHUNK)]
    pack_chunks(path, (len(names), size, size, 3), _crop_chunk, jobs, workers=workers,
                desc=f"prepare {split}", progress=progress)
    return len(names)


def prepare(index: CelebAIndex, out_dir: str | Path, *, image_size: int, workers: int,
            progress: bool = True) -> dict:
    """Pack every split of ``index`` into ``out_dir``; returns the summary written to meta.json."""
    for split in SPLITS:
        if not len(index.split_indices(split)):
            raise DebiaslabError(f"{index.root}: the {split} split is empty")
    counts = {}
    with atomic_path(out_dir, directory=True) as tmp:
        for split in SPLITS:
            counts[split] = pack_split(index, split, tmp / f"{split}.npy", image_size,
                                       workers=workers, progress=progress)
            rows = index.split_indices(split)
            table = pd.DataFrame(index.labels[rows], columns=index.attribute_names)
            table.insert(0, "image", [index.image_names[i] for i in rows])
            table.to_csv(tmp / f"{split}_labels.csv", index=False)
        meta = {"source": str(index.root), "image_dir": IMAGE_DIR, "image_size": image_size,
                "crop_box": list(CROP_BOX), "attributes": index.attribute_names, "counts": counts}
        write_json(tmp / "meta.json", meta)
    return meta
