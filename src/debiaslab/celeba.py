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
import pandas as pd

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

    @property
    def image_dir(self) -> Path:
        return (self.root / IMAGE_DIR).resolve()

    def image_path(self, name: str) -> Path:
        return resolve_image(self.image_dir, name)


def resolve_image(image_dir: Path, name: str) -> Path:
    """The image's path, refusing names that resolve outside ``image_dir`` (symlinks too)."""
    path = (image_dir / name).resolve()
    if not path.is_relative_to(image_dir):
        raise DebiaslabError(f"{image_dir / name}: resolves outside {image_dir}")
    return path


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DebiaslabError(f"{path}: file not found (expected a CelebA-format folder)")
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise DebiaslabError(f"{path}: not a text file (byte 0x{err.object[err.start]:02x} at offset "
                             f"{err.start} is not UTF-8; expected ASCII/UTF-8 text)") from None


# Byte-order marks of encodings the reader does not take; a UTF-8 BOM is simply skipped.
_FOREIGN_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
                 (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))


def _check_encoding(path: Path) -> None:
    """Refuse UTF-16/32 by their first bytes, before a parser shows their bytes as garbage."""
    with open(path, "rb") as f:
        head = f.read(4096)
    for bom, name in _FOREIGN_BOMS:
        if head.startswith(bom):
            raise DebiaslabError(f"{path}: {name} text; expected ASCII/UTF-8 (re-save it as UTF-8)")
    if b"\x00" in head:
        raise DebiaslabError(f"{path}: contains NUL bytes (UTF-16 text without a byte-order mark, or "
                             "not a text file); expected ASCII/UTF-8 (re-save it as UTF-8)")


def _first_repeat(path: Path, name: str, skip: int) -> str:
    """The message for image ``name`` listed twice, naming both lines: a scan, run only once the
    fast duplicate check found one (the first ``skip`` lines are headers)."""
    seen = [i + 1 for i, line in enumerate(_lines(path)) if i >= skip and line.split()[:1] == [name]]
    where = f"line {seen[1]}" if len(seen) > 1 else "a later line"
    first = f"first on line {seen[0]}" if seen else "listed before"
    return f"{path} {where}: image {name!r} appears again ({first}); expected one line per image"


def _check_image_name(name: str, where: str) -> None:
    """Lexical check: a plain relative name that cannot climb out of the image folder."""
    pure = PurePosixPath(name)
    if pure.is_absolute() or "\\" in name or any(p in ("..", "") for p in name.split("/")):
        raise DebiaslabError(f"{where}: image name {name!r} must be a relative path inside "
                             f"{IMAGE_DIR}/ (no '..', no leading '/')")


# A name that is absolute, has a backslash, an empty part or a '..' part.
_UNSAFE_NAME = r"^/|\\|(?:^|/)\.\.(?:/|$)|//|^$|/$"


def read_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Parse list_attr_celeba.txt with pandas' C parser (flat memory on CelebA's 202,599 rows);
    when anything is off, rescan it line by line to name the first bad line."""
    count, header = _attribute_head(path)
    try:
        frame = pd.read_csv(path, sep=r"\s+", skiprows=2, header=None, dtype={0: str},
                            engine="c", skip_blank_lines=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, UnicodeDecodeError):
        frame = None
    if (frame is None or frame.shape[1] != len(header) + 1 or frame.isna().to_numpy().any()
            or not all(pd.api.types.is_integer_dtype(t) for t in frame.dtypes[1:])):
        _explain_bad_rows(path, header)
        raise DebiaslabError(f"{path}: could not be parsed as a CelebA attribute table")
    if len(frame) != count:
        raise DebiaslabError(f"{path} line 1: says {count} images but {len(frame)} rows follow")
    names = frame[0]
    unsafe = np.flatnonzero(names.str.contains(_UNSAFE_NAME, regex=True).to_numpy())
    if unsafe.size:
        _check_image_name(names.iloc[unsafe[0]], f"{path} line {unsafe[0] + 3}")
    table = frame.iloc[:, 1:].to_numpy(np.int64)
    bad_rows = np.flatnonzero(~np.isin(table, (-1, 1)).all(1))
    if bad_rows.size:
        i = int(bad_rows[0])
        j = int(np.flatnonzero(~np.isin(table[i], (-1, 1)))[0])
        raise DebiaslabError(f"{path} line {i + 3}: {header[j]} is {table[i, j]}, "
                             "expected -1 or 1")
    repeated = names.duplicated()
    if repeated.any():
        raise DebiaslabError(_first_repeat(path, names[repeated].iloc[0], skip=2))
    return names.tolist(), header, ((table + 1) // 2).astype(np.int8)


def _attribute_head(path: Path) -> tuple[int, list[str]]:
    if not path.is_file():
        raise DebiaslabError(f"{path}: file not found (expected a CelebA-format folder)")
    _check_encoding(path)
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        head = [f.readline() for _ in range(2)]
    if not head[1].strip():
        raise DebiaslabError(f"{path}: expected a count line and a header line")
    try:
        count = int(head[0].strip())
    except ValueError:
        raise DebiaslabError(f"{path} line 1: expected the number of images, got "
                             f"{head[0].strip()[:40]!r}") from None
    header = head[1].split()
    if len(set(header)) != len(header):
        raise DebiaslabError(f"{path} line 2: expected unique attribute names")
    return count, header


def _explain_bad_rows(path: Path, header: list[str]) -> None:
    """Slow path, only after the fast parser failed: raise for the first malformed row."""
    for i, line in enumerate(_lines(path)[2:]):
        row = line.split()
        if not row:
            continue
        if len(row) != len(header) + 1:
            raise DebiaslabError(f"{path} line {i + 3}: expected an image name and {len(header)} "
                                 f"values (one per header name), found {len(row) - 1} values")
        if not all(v.lstrip("-").isdigit() for v in row[1:]):
            raise DebiaslabError(f"{path} line {i + 3}: expected only -1 and 1")


def read_partition(path: Path, names: list[str]) -> np.ndarray:
    """Partition ids in the order of ``names``, parsed like the attribute table: C parser first,
    a line-by-line rescan only to name the first bad line."""
    if not path.is_file():
        raise DebiaslabError(f"{path}: file not found (expected a CelebA-format folder)")
    _check_encoding(path)
    try:  # the C parser skips a UTF-8 byte-order mark itself
        frame = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, engine="c")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, UnicodeDecodeError):
        frame = None
    if (frame is None or frame.shape[1] != 2 or frame.isna().to_numpy().any()
            or not frame[1].isin(("0", "1", "2")).all()):
        _explain_bad_partition(path)
        raise DebiaslabError(f"{path}: could not be parsed as a CelebA partition list")
    repeated = frame[0].duplicated()
    if repeated.any():  # an image listed twice would silently take the split of its last line
        raise DebiaslabError(_first_repeat(path, frame[0][repeated].iloc[0], skip=0))
    ids = pd.Series(frame[1].to_numpy(np.int8), index=frame[0].to_numpy())
    ordered = ids.reindex(names)
    missing = ordered.isna().to_numpy()
    if missing.any():
        raise DebiaslabError(f"{path}: has no line for {names[int(np.argmax(missing))]!r}")
    if len(ids) != len(names):
        raise DebiaslabError(f"{path}: lists {len(ids) - len(names)} images absent from {ATTR_FILE}")
    return ordered.to_numpy(np.int8)


def _explain_bad_partition(path: Path) -> None:
    for i, line in enumerate(_lines(path)):
        row = line.split()
        if row and (len(row) != 2 or row[1] not in ("0", "1", "2")):
            raise DebiaslabError(f"{path} line {i + 1}: expected '<image name> <0|1|2>', "
                                 f"got {' '.join(row)[:60]!r}")


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
