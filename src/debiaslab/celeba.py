"""The one reader for CelebA-format folders: real CelebA or SynthFaces, validated line by line.

Layout::

    root/list_attr_celeba.txt      line 1 count, line 2 attribute names, then "000001.jpg -1 1 ..."
    root/list_eval_partition.txt   "000001.jpg 0" (0 train, 1 val, 2 test)
    root/img_align_celeba/*.jpg    178x218 aligned faces

No MD5 checks (torchvision's CelebA class insists on the official files); instead every
structural problem is reported as one line naming the file and line number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from .errors import DebiaslabError

ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGE_DIR = "img_align_celeba"
SPLITS = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class CelebAIndex:
    root: Path
    image_names: list[str]
    attribute_names: list[str]
    labels: np.ndarray  # (N, A) int8 in {0, 1}
    partition: np.ndarray  # (N,) int8 in {0, 1, 2}

    def split_indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.partition == SPLITS[split])

    def column(self, name: str) -> np.ndarray:
        if name not in self.attribute_names:
            raise DebiaslabError(f"{self.root / ATTR_FILE}: no attribute {name!r} "
                                 f"(valid: {', '.join(self.attribute_names)})")
        return self.labels[:, self.attribute_names.index(name)]

    def image_path(self, name: str) -> Path:
        """The image's path, refusing names that resolve outside the image folder (symlinks too)."""
        image_dir = (self.root / IMAGE_DIR).resolve()
        path = (image_dir / name).resolve()
        if not path.is_relative_to(image_dir):
            raise DebiaslabError(f"{self.root / IMAGE_DIR / name}: resolves outside {image_dir}")
        return path


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DebiaslabError(f"{path}: file not found (expected a CelebA-format folder)")
    try:
        return path.read_text().splitlines()
    except UnicodeDecodeError:
        raise DebiaslabError(f"{path}: not a text file") from None


def _check_image_name(name: str, where: str) -> None:
    """Lexical check: a plain relative name that cannot climb out of the image folder."""
    pure = PurePosixPath(name)
    if pure.is_absolute() or "\\" in name or any(p in ("..", "") for p in name.split("/")):
        raise DebiaslabError(f"{where}: image name {name!r} must be a relative path inside "
                             f"{IMAGE_DIR}/ (no '..', no leading '/')")


def read_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    lines = _lines(path)
    if len(lines) < 2:
        raise DebiaslabError(f"{path}: expected a count line and a header line, found "
                             f"{len(lines)} line(s)")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise DebiaslabError(f"{path} line 1: expected the number of images, got "
                             f"{lines[0].strip()[:40]!r}") from None
    header = lines[1].split()
    if not header or len(set(header)) != len(header):
        raise DebiaslabError(f"{path} line 2: expected unique attribute names")
    rows = [line.split() for line in lines[2:] if line.strip()]
    if len(rows) != count:
        raise DebiaslabError(f"{path} line 1: says {count} images but {len(rows)} rows follow")
    names, values = [], []
    for i, row in enumerate(rows):
        if len(row) != len(header) + 1:
            raise DebiaslabError(f"{path} line {i + 3}: expected an image name and {len(header)} "
                                 f"values (one per header name), found {len(row) - 1} values")
        _check_image_name(row[0], f"{path} line {i + 3}")
        names.append(row[0])
        values.append(row[1:])
    try:
        table = np.array(values, dtype=np.int64).reshape(len(rows), len(header))
    except ValueError:
        bad = next(i for i, r in enumerate(values) if not all(v.lstrip("-").isdigit() for v in r))
        raise DebiaslabError(f"{path} line {bad + 3}: expected only -1 and 1") from None
    bad_rows = np.flatnonzero(~np.isin(table, (-1, 1)).all(1))
    if bad_rows.size:
        i = int(bad_rows[0])
        j = int(np.flatnonzero(~np.isin(table[i], (-1, 1)))[0])
        raise DebiaslabError(f"{path} line {i + 3}: {header[j]} is {table[i, j]}, "
                             "expected -1 or 1")
    if len(set(names)) != len(names):
        raise DebiaslabError(f"{path}: image names are not unique")
    return names, header, ((table + 1) // 2).astype(np.int8)


def read_partition(path: Path, names: list[str]) -> np.ndarray:
    lines = [line.split() for line in _lines(path)]
    rows = [(i, r) for i, r in enumerate(lines) if r]
    lookup = {}
    for i, row in rows:
        if len(row) != 2 or row[1] not in ("0", "1", "2"):
            raise DebiaslabError(f"{path} line {i + 1}: expected '<image name> <0|1|2>', "
                                 f"got {' '.join(row)[:60]!r}")
        lookup[row[0]] = int(row[1])
    missing = [n for n in names if n not in lookup]
    if missing or len(lookup) != len(names):
        what = (f"has no line for {missing[0]!r}" if missing
                else f"lists {len(lookup) - len(names)} images absent from {ATTR_FILE}")
        raise DebiaslabError(f"{path}: {what}")
    return np.array([lookup[n] for n in names], dtype=np.int8)


def read_celeba(root: str | Path) -> CelebAIndex:
    """Read and validate the label files of a CelebA-format folder (images are checked on decode)."""
    root = Path(root)
    if not root.is_dir():
        raise DebiaslabError(f"{root}: data folder not found (set data.root in params.yaml)")
    if not (root / IMAGE_DIR).is_dir():
        raise DebiaslabError(f"{root / IMAGE_DIR}: image folder not found")
    names, header, labels = read_attributes(root / ATTR_FILE)
    partition = read_partition(root / PARTITION_FILE, names)
    return CelebAIndex(root, names, header, labels, partition)
