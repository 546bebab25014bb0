"""A generic multi-label source: one CSV table of images and 0/1 columns, packed like CelebA.

Layout (``data.root`` with ``data.table: table.csv``; ``python -m debiaslab.coco_import`` writes
one from COCO)::

    root/table.csv        image,split,<label>,<label>,...,<protected>
                          train2014/COCO_train2014_000000000009.jpg,train,0,1,...,1
    root/<image paths>    any size, any format Pillow decodes; paths relative to root

``split`` is train, val or test; every other column is a 0/1 label, the protected one among them
(``multilabel.protected`` names it; the multi-label stages treat the rest as labels). Images are
centre-cropped to a square and resized to ``prepare.image_size`` (the evaluation transform of Wang
et al. 2019, resize then centre crop, at a smaller size), then packed into the same
``<split>.npy`` / ``<split>_labels.csv`` files as a CelebA-format folder, so every stage reads them
with :class:`debiaslab.data.PreparedSplit`. The root is only read; every problem is one line
naming the file, line and value.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from .errors import DebiaslabError
from .io import atomic_path, write_json
from .prepare import CHUNK, decode_image, pack_chunks, square_resize_image

SPLITS = ("train", "val", "test")
IMAGE_COLUMN, SPLIT_COLUMN = "image", "split"


@dataclass(frozen=True)
class TableIndex:
    root: Path  # resolved
    path: Path  # the table file
    image_names: list[str]  # relative to root, as written in the table
    label_names: list[str]
    labels: np.ndarray  # (N, L) int8 in {0, 1}
    split: np.ndarray  # (N,) int8: 0 train, 1 val, 2 test

    def split_indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == SPLITS.index(split))


def check_relative_name(name: str, where: str, what: str = "image",
                        inside: str = "the table's folder") -> None:
    """A relative path that cannot climb out of its folder: no leading '/', no '..', no '\\'."""
    pure = PurePosixPath(name)
    if (not name or pure.is_absolute() or "\\" in name
            or any(part in ("..", "") for part in name.split("/"))):
        raise DebiaslabError(f"{where}: {what} path {name!r} must be relative to {inside} "
                             "(no '..', no leading '/', '/' between folders)")


def resolve_inside(root: Path, name: str, where: str) -> Path:
    """``root / name`` resolved, refusing one that leads outside ``root`` (symlinks too)."""
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise DebiaslabError(f"{where}: {root / name} resolves outside {root} (the pipeline reads "
                             "only data.root; copy or move the files into it)")
    return path


def read_table(root: str | Path, table: str) -> TableIndex:
    """Read and check ``root/table`` and that every image it names exists inside ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DebiaslabError(f"{root}: data folder not found (set data.root in params.yaml)")
    root = root.resolve()
    check_relative_name(table, "data.table", "table", "data.root")
    path = resolve_inside(root, table, "data.table")
    if not path.is_file():
        raise DebiaslabError(f"{path}: table not found (data.table names a CSV file inside "
                             "data.root: image,split and one 0/1 column per label)")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError as err:
        raise DebiaslabError(f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset "
                             f"{err.start}); save the table as UTF-8 CSV") from None
    except csv.Error as err:
        raise DebiaslabError(f"{path}: not a readable CSV file ({err})") from None
    if not rows or not any(rows[0]):
        raise DebiaslabError(f"{path}: empty; expected a header line image,split,<label>,...")
    header = [h.strip() for h in rows[0]]
    image_col, split_col, label_cols = _header(path, header)
    names, labels, splits = [], [], []
    seen: dict[Path, tuple[int, str]] = {}  # by the file itself: a/./x.jpg and a link to it are x.jpg
    for i, row in enumerate(rows[1:], start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        where = f"{path} line {i}"
        if len(row) != len(header):
            raise DebiaslabError(f"{where}: {len(row)} fields, expected {len(header)} (one per "
                                 "header column)")
        name = row[image_col].strip()
        check_relative_name(name, where)
        image = resolve_inside(root, name, where)
        if not image.is_file():
            raise DebiaslabError(f"{where}: image {name!r}: file not found in {root}")
        if image in seen:
            line, first = seen[image]
            same = "" if first == name else f" as {first!r}"
            raise DebiaslabError(f"{where}: image {name!r} appears again (first on line {line}{same}); "
                                 "expected one row per image")
        seen[image] = (i, name)
        split = row[split_col].strip()
        if split not in SPLITS:
            raise DebiaslabError(f"{where}: split is {split!r}, expected one of {', '.join(SPLITS)}")
        values = [row[j].strip() for j in label_cols]
        for j, value in zip(label_cols, values, strict=True):
            if value not in ("0", "1"):
                raise DebiaslabError(f"{where}: column {header[j]!r} is {value!r}, expected 0 or 1")
        names.append(name)
        splits.append(SPLITS.index(split))
        labels.append([v == "1" for v in values])
    index = TableIndex(root, path, names, [header[j] for j in label_cols],
                       np.array(labels, np.int8).reshape(len(names), len(label_cols)),
                       np.array(splits, np.int8))
    for split in SPLITS:
        if not len(index.split_indices(split)):
            raise DebiaslabError(f"{path}: the {split} split has no rows; expected rows of each of "
                                 f"{', '.join(SPLITS)}")
    return index


def _header(path: Path, header: list[str]) -> tuple[int, int, list[int]]:
    where = f"{path} line 1"
    for name in (IMAGE_COLUMN, SPLIT_COLUMN):
        if name not in header:
            raise DebiaslabError(f"{where}: no {name!r} column (header: {','.join(header)[:120]}); "
                                 "expected image,split,<label>,...")
    for j, name in enumerate(header):
        if not name or any(ord(c) < 32 for c in name):
            raise DebiaslabError(f"{where}: column {j + 1} has no name or control characters "
                                 f"({name!r}); expected a name per column")
        if header.index(name) != j:
            raise DebiaslabError(f"{where}: column {name!r} appears twice; expected unique names")
    labels = [j for j, name in enumerate(header) if name not in (IMAGE_COLUMN, SPLIT_COLUMN)]
    if len(labels) < 2:
        raise DebiaslabError(f"{where}: {len(labels)} label column(s); expected at least two 0/1 "
                             "columns (the labels and the protected column)")
    return header.index(IMAGE_COLUMN), header.index(SPLIT_COLUMN), labels


def square_resize(path: Path, size: int) -> np.ndarray:
    """Decode one image, crop its central square and resize it to ``size``: uint8 (S, S, 3)."""
    return decode_image(path, lambda img: square_resize_image(img, size))


def _square_chunk(job: tuple[Path, list[str], int]) -> np.ndarray:
    root, names, size = job
    return np.stack([square_resize(root / n, size) for n in names])


def pack_table(index: TableIndex, out_dir: str | Path, *, image_size: int, workers: int,
               progress: bool = True) -> dict:
    """Pack every split of ``index`` into ``out_dir`` (PreparedSplit's files); returns meta.json."""
    counts = {}
    with atomic_path(out_dir, directory=True) as tmp:
        for split in SPLITS:
            rows = index.split_indices(split)
            names = [index.image_names[i] for i in rows]
            jobs = [(index.root, names[s:s + CHUNK], image_size) for s in range(0, len(names), CHUNK)]
            pack_chunks(tmp / f"{split}.npy", (len(names), image_size, image_size, 3), _square_chunk,
                        jobs, workers=workers, desc=f"prepare {split}", progress=progress)
            frame = pd.DataFrame(index.labels[rows], columns=index.label_names)
            frame.insert(0, IMAGE_COLUMN, names)
            frame.to_csv(tmp / f"{split}_labels.csv", index=False)
            counts[split] = len(names)
        meta = {"source": str(index.root), "table": index.path.relative_to(index.root).as_posix(),
                "image_size": image_size,
                "transform": "central square crop, then resize", "attributes": index.label_names,
                "counts": counts}
        write_json(tmp / "meta.json", meta)
    return meta
