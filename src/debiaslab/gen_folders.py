"""Generated data a user brings, in Dr-Fairness's layout: one folder per attribute combination.

Dr-Fairness (Roh et al., TMLR 2023) reads its group-conditional generated images from a folder
holding one sub-folder per combination of attribute values, named by the values joined with
underscores, the images directly inside (its README: 48 folders such as
``old_male_nosmile_glasses_blackhair/`` of 2k images each; any generator may produce them)::

    <root>/young_female_smile_glasses_blackhair/<any name>.png|jpg|jpeg
    <root>/old_male_nosmile_noglasses_otherhair/...

Its preprocessing_celeba.py puts a folder into a (label, group) cell by the value at the
attribute's position in the name. Here a folder's cell comes from its tokens instead:
``gen_data.tokens`` maps each attribute's tokens to its 0/1 label, the name split on ``_`` must
hold exactly one token of the target's map and one of the protected attribute's (other tokens, such
as age or hair colour, are ignored), and folders that share a cell are pooled. Hidden entries
(``.*``) are skipped; anything else that does not fit (a loose file, a nested folder, a file that is
not png/jpg/jpeg, an empty folder, a folder whose name has no or two tokens of an attribute, a cell
with fewer than two images) stops with one line naming it and what was expected. The root is only
read.

Images are decoded only when drawn (:func:`pack_gen_images`): a 178x218 image (CelebA's aligned
size) gets CelebA's crop as the real data do, any other size its central square; then a bilinear
resize to ``prepare.image_size``, giving uint8 (S, S, 3) rows like the real data's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import DebiaslabError
from .params import PROJECT_GENERATED
from .prepare import SOURCE_SIZE, crop_resize_image, decode_image, pack_chunks, square_resize_image

EXTENSIONS = (".png", ".jpg", ".jpeg")
CELLS = ((0, 0), (0, 1), (1, 0), (1, 1))  # (y, g), in fair_cells' order
CHUNK = 64
LAYOUT = ("one folder per attribute combination, named by its values joined with _ "
          "(e.g. young_female_smile_glasses_blackhair/), each holding .png/.jpg images")


class GenFolders(NamedTuple):
    """Every image under the root, in folder then file name order, with its cell's labels."""

    root: Path
    paths: list[Path]
    y: np.ndarray  # int64 (N,): the target's label
    g: np.ndarray  # int64 (N,): the protected attribute's label
    folders: dict[tuple[int, int], list[str]]  # cell -> names of its folders


def is_project_generated(root: str | Path) -> bool:
    """Whether ``root`` is the project's own data/generated (relative to the repository root, the
    working directory of every stage), however it is spelt."""
    return Path(root).resolve() == Path(PROJECT_GENERATED).resolve()


def _describe(tokens: dict[str, int]) -> str:
    return ", ".join(tokens)


def _cell_tokens(tokens: dict[str, int], label: int) -> str:
    return "/".join(t for t, v in tokens.items() if v == label)


def folder_cell(folder: Path, target: str, protected: str, tokens: dict) -> tuple[int, int]:
    """(y, g) of one combination folder from the tokens of its name."""
    parts = folder.name.split("_")
    labels = []
    for attribute in (target, protected):
        found = [p for p in parts if p in tokens[attribute]]
        if len(found) != 1:
            problem = f"no {attribute} token" if not found else \
                f"{len(found)} {attribute} tokens ({', '.join(found)})"
            raise DebiaslabError(
                f"{folder}: folder name has {problem}; expected exactly one of: "
                f"{_describe(tokens[attribute])} (gen_data.tokens.{attribute}; the name is split on _)")
        labels.append(tokens[attribute][found[0]])
    return labels[0], labels[1]


def check_tokens(tokens: dict, target: str, protected: str) -> None:
    for attribute, role in ((target, "target"), (protected, "protected attribute")):
        if attribute not in tokens:
            raise DebiaslabError(
                f"gen_data.tokens: no token map for {attribute} (the {role}); add the tokens its "
                f"folder names use, e.g. gen_data.tokens.{attribute}: {{yes_word: 1, no_word: 0}}")


def read_gen_folders(root: str | Path, target: str, protected: str, tokens: dict) -> GenFolders:
    """Index ``root``'s combination folders for one (target, protected) pair; see the module doc.

    Every cell must have at least two images (one for the sampler's validation probes)."""
    root = Path(root)
    check_tokens(tokens, target, protected)
    if not root.exists():
        raise DebiaslabError(f"{root}: gen_data.root not found (expected a folder of generated data: "
                             f"{LAYOUT})")
    if not root.is_dir():
        raise DebiaslabError(f"{root}: gen_data.root is not a folder (expected {LAYOUT})")
    real_root = root.resolve()
    cells_dir = Path("data/cells").resolve()
    if real_root == cells_dir or cells_dir in real_root.parents or real_root in cells_dir.parents:
        raise DebiaslabError(f"{root}: gen_data.root overlaps data/cells, which fair_cells writes "
                             "(point it at the folder of generated data)")

    def inside(path: Path) -> None:
        real = path.resolve()
        if real_root not in real.parents:
            raise DebiaslabError(f"{path}: resolves to {real}, outside gen_data.root {root} "
                                 "(symlinks must stay inside it)")

    paths, y, g = [], [], []
    seen: dict[Path, Path] = {}  # each file once: a linked folder or image would count it twice
    folders: dict[tuple[int, int], list[str]] = {cell: [] for cell in CELLS}
    for entry in _entries(root):
        folder = root / entry.name
        if not entry.is_dir():
            hint = ("; is gen_data.root one combination folder? point it at the folder above"
                    if folder.suffix.lower() in EXTENSIONS else "")
            raise DebiaslabError(f"{folder}: a file directly in gen_data.root (expected {LAYOUT})"
                                 f"{hint}")
        inside(folder)
        cell = folder_cell(folder, target, protected, tokens)
        images = []
        for item in _entries(folder):
            path = folder / item.name
            if item.is_dir():
                raise DebiaslabError(f"{path}: unexpected folder inside a combination folder (expected "
                                     "its images directly in it)")
            if path.suffix.lower() not in EXTENSIONS:
                raise DebiaslabError(f"{path}: not an image file (expected "
                                     f"{', '.join(e[1:] for e in EXTENSIONS)} files in the combination "
                                     "folders)")
            if item.is_symlink():
                inside(path)
            if not item.is_file():
                raise DebiaslabError(f"{path}: not a regular file (broken link?)")
            if (real := path.resolve()) in seen:
                raise DebiaslabError(f"{path}: the same file as {seen[real]} (through a link); "
                                     "expected each generated image once")
            seen[real] = path
            images.append(path)
        if not images:
            raise DebiaslabError(f"{folder}: no images (expected the generated .png/.jpg images of "
                                 "this attribute combination)")
        folders[cell].append(entry.name)
        paths.extend(images)
        y.extend([cell[0]] * len(images))
        g.extend([cell[1]] * len(images))
    if not paths:
        raise DebiaslabError(f"{root}: gen_data.root holds no folders (expected {LAYOUT})")
    y, g = np.array(y, dtype=np.int64), np.array(g, dtype=np.int64)
    for t, k in CELLS:
        n = int(np.sum((y == t) & (g == k)))
        if n < 2:
            found = "no folder" if not folders[t, k] else f"only {n} image (in {folders[t, k][0]}/)"
            raise DebiaslabError(
                f"{root}: {found} for cell ({target}={t}, {protected}={k}); expected at least two "
                f"images in folders whose names hold {_cell_tokens(tokens[target], t)} and "
                f"{_cell_tokens(tokens[protected], k)} (one is held out for the sampler's probes)")
    return GenFolders(root, paths, y, g, folders)


def _entries(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)


def load_gen_image(path: Path, size: int) -> np.ndarray:
    """One generated image as uint8 (size, size, 3): CelebA's crop if it is 178x218, else its
    central square; then the bilinear resize of the real data."""
    return decode_image(path, lambda img: (crop_resize_image(img, size) if img.size == SOURCE_SIZE
                                           else square_resize_image(img, size)))


def _load_chunk(job: tuple[list[Path], int]) -> np.ndarray:
    paths, size = job
    return np.stack([load_gen_image(p, size) for p in paths])


def pack_gen_images(paths: list[Path], out_path: str | Path, size: int, *, workers: int = 1,
                    progress: bool = True) -> None:
    """Decode ``paths`` in order into the .npy file ``out_path``, (N, size, size, 3) uint8."""
    jobs = [(paths[s:s + CHUNK], size) for s in range(0, len(paths), CHUNK)]
    pack_chunks(Path(out_path), (len(paths), size, size, 3), _load_chunk, jobs, workers=workers,
                desc="pack generated", progress=progress)
