"""Read and pack datasets in the BiasEnsemble / DisEnt folder layout (Colored MNIST, BFFHQ, ...).

Layout, under a root that holds one folder per severity::

    <severity>/align/<class>/<name>_<target>_<bias>.<ext>       bias-aligned: target == bias
    <severity>/conflict/<class>/<name>_<target>_<bias>.<ext>    bias-conflicting: target != bias
    valid/<name>_<target>_<bias>.<ext>                          shared by every severity
    test/<class>/<name>_<target>_<bias>.<ext>

``ext`` is png, jpg or jpeg. ``valid/`` may instead sit inside the severity folder (DisEnt's
Colored MNIST release does that; the severity's own copy wins), and ``valid/`` and ``test/`` may
hold their files flat or in ``<class>/`` folders (BFFHQ's test set is flat). Hidden files (``.*``)
are skipped; anything else that does not fit is an error naming the file. Labels come from the
file name only; a ``<class>/`` folder must agree with the target, and ``align``/``conflict`` with
whether target equals bias. Labels are class indices 0..K-1, K the number of classes in the
training split (bias labels too: a sample is bias-aligned when its bias label is its class).

That permissive reading is the ``colored_digits`` layout, the project's own. A downloaded release
is read in its own layout, exactly as BiasEnsemble's ``data/util.py`` globs it (:data:`LAYOUTS`):
``cmnist`` and ``dogs_cats`` keep ``valid/`` (flat) inside the severity folder and ``test/<class>/``
at the root; ``bffhq`` keeps ``valid/`` and ``test/`` flat at the root; ``bar`` has no severity
folders for the aligned samples (``train/align/<class>/``, ``train/conflict/<severity>/<class>/``,
``valid/<class>/``, ``test/<class>/``) and, as the original does, takes a training sample's bias
label from its folder (aligned: its class; conflicting: class + 1 mod K), not from its name.
Anything else in those folders is an error naming the folder and the layout expected.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from .errors import DebiaslabError
from .io import atomic_path, write_json
from .prepare import pack_chunks

SPLITS = ("train", "valid", "test")
EXTENSIONS = ("png", "jpg", "jpeg")
NAME_PATTERN = re.compile(r"^(?P<stem>.+)_(?P<target>[^_]+)_(?P<bias>[^_]+)\.(?P<ext>[^.]+)$")
LABEL_PATTERN = re.compile(r"^[0-9]+$")
EXPECTED_NAME = "<name>_<target>_<bias>.png|jpg|jpeg"
CHUNK = 256


class BiasSplit(NamedTuple):
    """One split: image paths (root-joined, not resolved) and their labels, in a fixed order."""

    paths: list[Path]
    target: np.ndarray  # int64 (N,)
    bias: np.ndarray  # int64 (N,)
    aligned: np.ndarray  # bool (N,): target == bias


class BiasFolder(dict):
    """``{"train": BiasSplit, "valid": ..., "test": ...}`` plus where it came from and its classes."""

    def __init__(self, splits: dict[str, BiasSplit], *, root: Path, severity_dir: str,
                 classes: list[int]):
        super().__init__(splits)
        self.root, self.severity_dir, self.classes = root, severity_dir, classes


class Layout(NamedTuple):
    """Where one release keeps each split, relative to its root; ``{sev}`` is the severity folder.

    A split folder holds ``classes`` (only ``<class>/`` folders of files), ``flat`` (only files) or
    ``either`` (both: the ``colored_digits`` layout's leniency)."""

    title: str
    align: str
    conflict: str
    valid: str
    valid_holds: str
    test: str
    test_holds: str
    bias_from_folder: bool = False  # BAR: train bias labels from align/conflict, not the name

    def describe(self) -> str:
        def holds(template: str, kind: str) -> str:
            where = template.format(sev="<severity>")
            return f"{where}/<class>/" if kind == "classes" else f"{where}/ (flat)"
        return (f"a {self.title} folder: {holds(self.align, 'classes')}, "
                f"{holds(self.conflict, 'classes')}, {holds(self.valid, self.valid_holds)}, "
                f"{holds(self.test, self.test_holds)}, files named {EXPECTED_NAME}")


# Each release as BiasEnsemble's data/util.py reads it (CMNISTDataset, bFFHQDataset, BARDataset,
# DogCatDataset; DisEnt's README draws the same CMNIST and BFFHQ trees).
LAYOUTS = {
    "colored_digits": Layout("Colored Digits", "{sev}/align", "{sev}/conflict", "valid", "either",
                             "test", "either"),
    "cmnist": Layout("Colored MNIST (cmnist)", "{sev}/align", "{sev}/conflict", "{sev}/valid", "flat",
                     "test", "classes"),
    "bffhq": Layout("BFFHQ (bffhq)", "{sev}/align", "{sev}/conflict", "valid", "flat", "test", "flat"),
    "bar": Layout("BAR (bar)", "train/align", "train/conflict/{sev}", "valid", "classes", "test",
                  "classes", bias_from_folder=True),
    "dogs_cats": Layout("Dogs & Cats (dogs_and_cats)", "{sev}/align", "{sev}/conflict", "{sev}/valid",
                        "flat", "test", "classes"),
}
SEVERITY_DIR = re.compile(r"^[0-9.]+pct$")


def guess_layout(root: Path) -> str | None:
    """The release ``root`` looks like, from its top folders only (for hints in error messages)."""
    if (root / "train" / "align").is_dir():
        return "bar"
    sevs = [p for p in root.glob("*pct") if p.is_dir() and SEVERITY_DIR.match(p.name)]
    if not sevs:
        return None
    if any((p / "valid").is_dir() for p in sevs):
        return "cmnist or dogs_cats"
    if (root / "test").is_dir() and any(p.is_file() for p in (root / "test").iterdir()):
        return "bffhq"
    return "colored_digits"


def _layout_error(root: Path, layout: str, problem: str) -> DebiaslabError:
    spec = LAYOUTS[layout]
    hint = ""
    guess = guess_layout(root)
    if guess is not None and layout not in guess.split(" or "):
        hint = f"; it looks like {guess} (set bias_data.dataset)"
    inner = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if guess is None and any(name in inner for name in ("cmnist", "bffhq", "bar", "dogs_and_cats")):
        hint = f"; it holds {', '.join(inner)}/: point bias_data.root at one of them"
    return DebiaslabError(f"{root}: not {spec.describe()} ({problem}){hint}")


# --------------------------------------------------------------------------- reading
def parse_name(path: Path) -> tuple[int, int]:
    """(target, bias) from a file name ending in ``_<target>_<bias>.<ext>``."""
    m = NAME_PATTERN.match(path.name)
    if m is None or m["ext"].lower() not in EXTENSIONS:
        raise DebiaslabError(f"{path}: file name does not match {EXPECTED_NAME}")
    for key in ("target", "bias"):
        if not LABEL_PATTERN.match(m[key]):
            raise DebiaslabError(f"{path}: {key} label {m[key]!r} in the file name is not a "
                                 f"non-negative integer (expected {EXPECTED_NAME})")
    return int(m["target"]), int(m["bias"])


class _Scanner:
    """Walks folders under one root, refusing anything that resolves outside it."""

    def __init__(self, root: Path):
        self.root = root
        self.real_root = root.resolve()

    def check_inside(self, path: Path) -> None:
        real = path.resolve()
        if real != self.real_root and self.real_root not in real.parents:
            raise DebiaslabError(f"{path}: resolves to {real}, outside the dataset root {self.root} "
                                 "(symlinks must stay inside the root)")

    def folder(self, path: Path, expected: str) -> Path:
        if not path.is_dir():
            raise DebiaslabError(f"{path}: folder not found (expected {expected})")
        self.check_inside(path)
        return path

    def entries(self, folder: Path) -> list[os.DirEntry]:
        with os.scandir(folder) as it:
            return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)

    def images(self, folder: Path, *, flat: bool, sub: str | None,
               holds: str | None = None) -> list[tuple[Path, int, int]]:
        """Files of one split folder: ``<class>/`` folders, plus loose files when ``flat``.

        ``holds`` "flat" refuses subfolders. ``sub`` is "align" or "conflict" to check target ==
        bias (or !=), else None.
        """
        found = []
        for entry in self.entries(folder):
            path = folder / entry.name
            if entry.is_dir() and holds == "flat":
                raise DebiaslabError(f"{path}: unexpected folder (expected the files directly in "
                                     f"{folder}/, named {EXPECTED_NAME})")
            if entry.is_dir():
                if not LABEL_PATTERN.match(entry.name):
                    raise DebiaslabError(f"{path}: unexpected folder (expected class folders named "
                                         f"by an integer, e.g. {folder / '0'})")
                self.check_inside(path)
                found.extend(self._class_files(path, int(entry.name), sub))
            elif flat:
                found.append(self._file(entry, path, None, sub))
            else:
                raise DebiaslabError(f"{path}: file outside a class folder (expected "
                                     f"{folder}/<class>/{EXPECTED_NAME})")
        return found

    def _class_files(self, folder: Path, cls: int, sub: str | None) -> list[tuple[Path, int, int]]:
        found = []
        for entry in self.entries(folder):
            path = folder / entry.name
            if entry.is_dir():
                raise DebiaslabError(f"{path}: unexpected folder inside class folder {folder} "
                                     f"(expected files named {EXPECTED_NAME})")
            found.append(self._file(entry, path, cls, sub))
        return found

    def _file(self, entry: os.DirEntry, path: Path, cls: int | None,
              sub: str | None) -> tuple[Path, int, int]:
        if entry.is_symlink():
            self.check_inside(path)
        if not entry.is_file():
            raise DebiaslabError(f"{path}: not a regular file (broken link?)")
        target, bias = parse_name(path)
        if cls is not None and target != cls:
            raise DebiaslabError(f"{path}: target {target} in the file name disagrees with its class "
                                 f"folder {path.parent.name}/")
        if sub == "align" and target != bias:
            raise DebiaslabError(f"{path}: under align/ but target {target} != bias {bias} "
                                 "(aligned files need target == bias)")
        if sub == "conflict" and target == bias:
            raise DebiaslabError(f"{path}: under conflict/ but target == bias == {target} "
                                 "(conflicting files need target != bias)")
        return path, target, bias


def _as_split(rows: list[tuple[Path, int, int]]) -> BiasSplit:
    target = np.array([r[1] for r in rows], dtype=np.int64)
    bias = np.array([r[2] for r in rows], dtype=np.int64)
    return BiasSplit([r[0] for r in rows], target, bias, target == bias)


def read_bias_folder(root: str | Path, severity_dir: str, layout: str = "colored_digits") -> BiasFolder:
    """Index train (= align + conflict of ``severity_dir``), valid and test; see the module doc."""
    root = Path(root)
    if layout not in LAYOUTS:
        raise DebiaslabError(f"{root}: unknown layout {layout!r} (expected one of: {', '.join(LAYOUTS)})")
    if not root.exists():
        raise DebiaslabError(f"{root}: dataset root folder not found")
    if not root.is_dir():
        raise DebiaslabError(f"{root}: dataset root is not a folder (expected {LAYOUTS[layout].describe()})")
    if not severity_dir or Path(severity_dir).name != severity_dir or severity_dir in (".", ".."):
        raise DebiaslabError(f"{root}: severity folder {severity_dir!r} must be a single folder name "
                             "such as '0.5pct'")
    if layout != "colored_digits":
        return _read_release(root, severity_dir, layout)
    scan = _Scanner(root)
    sev = scan.folder(root / severity_dir, f"the severity folder {severity_dir}/ under {root}")
    train = []
    for sub in ("align", "conflict"):
        folder = scan.folder(sev / sub, f"{severity_dir}/{sub}/<class>/{EXPECTED_NAME}")
        train.extend(scan.images(folder, flat=False, sub=sub))
    valid_dir = sev / "valid" if (sev / "valid").is_dir() else root / "valid"
    valid_dir = scan.folder(valid_dir, f"valid/{EXPECTED_NAME} under {root} (or under {sev})")
    test_dir = scan.folder(root / "test", f"test/<class>/{EXPECTED_NAME} under {root}")
    rows = {"train": train, "valid": scan.images(valid_dir, flat=True, sub=None),
            "test": scan.images(test_dir, flat=True, sub=None)}
    where = {"train": f"{sev}/align and {sev}/conflict", "valid": str(valid_dir), "test": str(test_dir)}
    for split in SPLITS:
        if not rows[split]:
            raise DebiaslabError(f"{where[split]}: no images found for the {split} split "
                                 f"(expected files named {EXPECTED_NAME})")
    classes = _check_label_range(rows)
    splits = {split: _as_split(rows[split]) for split in SPLITS}
    return BiasFolder(splits, root=root, severity_dir=severity_dir, classes=classes)


def _read_release(root: Path, severity_dir: str, layout: str) -> BiasFolder:
    """A downloaded release, strictly in ``LAYOUTS[layout]``: every folder where the original globs."""
    spec = LAYOUTS[layout]
    scan = _Scanner(root)

    def folder(template: str, split: str) -> Path:
        path = root / template.format(sev=severity_dir)
        if path.is_dir():
            scan.check_inside(path)
            return path
        if "{sev}" in template:
            base = root / template.split("{sev}")[0]
            found = sorted(p.name for p in base.iterdir() if p.is_dir() and SEVERITY_DIR.match(p.name)) \
                if base.is_dir() else []
            if found and not (base / severity_dir).is_dir():
                raise DebiaslabError(f"{base / severity_dir}: severity folder not found (found: "
                                     f"{', '.join(found)}; set colored_digits.severities to those)")
        raise _layout_error(root, layout, f"no {template.format(sev=severity_dir)}/ for the {split} split")

    align = scan.images(folder(spec.align, "train"), flat=False,
                        sub=None if spec.bias_from_folder else "align")
    conflict = scan.images(folder(spec.conflict, "train"), flat=False,
                           sub=None if spec.bias_from_folder else "conflict")
    rows = {"train": align + conflict}
    for split, template, holds in (("valid", spec.valid, spec.valid_holds),
                                   ("test", spec.test, spec.test_holds)):
        rows[split] = scan.images(folder(template, split), flat=holds == "flat", sub=None, holds=holds)
    for split in SPLITS:
        if not rows[split]:
            raise _layout_error(root, layout, f"no images for the {split} split")
    if spec.bias_from_folder:  # BAR: the original's labels, whatever the name's bias field says
        k = len({target for _, target, _ in rows["train"]})
        rows["train"] = ([(p, t, t) for p, t, _ in align]
                         + [(p, t, (t + 1) % k) for p, t, _ in conflict])
    classes = _check_label_range(rows)
    splits = {split: _as_split(rows[split]) for split in SPLITS}
    return BiasFolder(splits, root=root, severity_dir=severity_dir, classes=classes)


def _check_label_range(rows: dict[str, list[tuple[Path, int, int]]]) -> list[int]:
    """The classes: 0..K-1 for the K distinct targets of the training split (the stages give
    their classifiers max(target) + 1 outputs). Every target and bias label of every split must
    be one of them, checked on the parsed ints before any array or classifier head is allocated."""
    k = len({target for _, target, _ in rows["train"]})
    for split in SPLITS:
        for path, target, bias in rows[split]:
            for key, label in (("target", target), ("bias", bias)):
                if label >= k:
                    raise DebiaslabError(
                        f"{path}: {key} label {label} is out of range: the training split has {k} "
                        f"classes, so labels must be 0..{k - 1} (class indices from 0, without gaps)")
    return list(range(k))


# --------------------------------------------------------------------------- packing
def load_image(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    """Decode one image to uint8 (H, W, 3); resize bilinearly to ``size`` = (H, W) if given."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except FileNotFoundError:
        raise DebiaslabError(f"{path}: image file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DebiaslabError(f"{path}: cannot decode image ({err})") from None


def _load_chunk(job: tuple[list[Path], tuple[int, int], bool]) -> np.ndarray:
    paths, size, resize = job
    out = []
    for path in paths:
        img = load_image(path, size if resize else None)
        if img.shape[:2] != size:
            raise DebiaslabError(f"{path}: image is {img.shape[1]}x{img.shape[0]}, expected "
                                 f"{size[1]}x{size[0]} like the first training image "
                                 "(pass image_size to resize every image)")
        out.append(img)
    return np.stack(out)


def _pack_split(split: BiasSplit, path: Path, size: tuple[int, int], resize: bool, *,
                name: str, workers: int, progress: bool) -> None:
    jobs = [(split.paths[s:s + CHUNK], size, resize) for s in range(0, len(split.paths), CHUNK)]
    pack_chunks(path, (len(split.paths), *size, 3), _load_chunk, jobs, workers=workers,
                desc=f"pack {name}", progress=progress)


def pack_bias_folder(root: str | Path, severity_dir: str, out_dir: str | Path, *,
                     image_size: int | None = None, workers: int = 1, progress: bool = True,
                     layout: str = "colored_digits") -> dict:
    """Decode every split once into ``<split>.npy`` (N, H, W, 3) uint8 + ``<split>_labels.csv``.

    The CSV has columns image (path relative to ``root``), target, bias, aligned (0/1). Without
    ``image_size`` every image must share the first training image's size; with it, each is resized
    to image_size x image_size. ``out_dir`` appears whole or not at all; returns meta.json's content
    (with ``dataset``, the layout, for every layout but the default ``colored_digits``).
    """
    folder = read_bias_folder(root, severity_dir, layout)
    root = folder.root
    if image_size is not None:
        if not isinstance(image_size, (int, np.integer)) or image_size < 1:
            raise DebiaslabError(f"pack {root}: image_size = {image_size!r}, expected a positive integer")
        size, resize = (int(image_size), int(image_size)), True
    else:
        size, resize = load_image(folder["train"].paths[0], None).shape[:2], False
    counts = {}
    with atomic_path(out_dir, directory=True) as tmp:
        for name in SPLITS:
            split = folder[name]
            _pack_split(split, tmp / f"{name}.npy", size, resize, name=name, workers=workers,
                        progress=progress)
            table = pd.DataFrame({
                "image": [p.relative_to(root).as_posix() for p in split.paths],
                "target": split.target, "bias": split.bias, "aligned": split.aligned.astype(np.int64)})
            table.to_csv(tmp / f"{name}_labels.csv", index=False)
            counts[name] = {"images": len(split.paths), "aligned": int(split.aligned.sum()),
                            "conflicting": int((~split.aligned).sum())}
        meta = {"source": str(root), "severity_dir": severity_dir, "image_size": list(size),
                "resized": resize, "classes": folder.classes, "counts": counts}
        if layout != "colored_digits":
            meta["dataset"] = layout
        write_json(tmp / "meta.json", meta)
    return meta
