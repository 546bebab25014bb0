"""Writes tests/fixtures/bias_layouts/: one tiny folder per BiasEnsemble release, in its layout.

Each tree is the one BiasEnsemble's data/util.py globs (CMNISTDataset, bFFHQDataset, BARDataset,
DogCatDataset), with a few solid-colour images named ``<id>_<target>_<bias>.<ext>``: PNG for
Colored MNIST and BFFHQ, JPEG of assorted sizes for BAR and Dogs & Cats. Three classes instead of
BAR's six and CMNIST's ten; two, as released, for BFFHQ and Dogs & Cats.
Regenerate with ``python tests/make_bias_layouts.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent / "fixtures" / "bias_layouts"


def _cmnist_like(sevs: list[str], classes: int, ext: str, valid_in_severity: bool,
                 test_flat: bool) -> dict[str, tuple[int, int]]:
    """{relative path: (width, height)} of a severity-folder release (cmnist, bffhq, dogs_cats)."""
    files, n = {}, 0

    def add(rel: str, target: int, bias: int, size=(4, 4)) -> None:
        nonlocal n
        files[f"{rel}/{n:05d}_{target}_{bias}.{ext}"] = size
        n += 1

    for sev in sevs:
        for c in range(classes):
            add(f"{sev}/align/{c}", c, c)
            add(f"{sev}/align/{c}", c, c)
            add(f"{sev}/conflict/{c}", c, (c + 1) % classes)
        if valid_in_severity:
            for c in range(classes):
                add(f"{sev}/valid", c, (c + 1) % classes)
    if not valid_in_severity:
        for c in range(classes):
            add("valid", c, c)
            add("valid", c, (c + 1) % classes)
    for c in range(classes):
        add("test" if test_flat else f"test/{c}", c, c)
        add("test" if test_flat else f"test/{c}", c, (c + 1) % classes)
    return files


def _bar() -> dict[str, tuple[int, int]]:
    """BAR: train/align/<c>/, train/conflict/<pct>/<c>/, valid/<c>/, test/<c>/; sizes vary."""
    files, n = {}, 0
    sizes = [(6, 4), (4, 5), (5, 5)]

    def add(rel: str, target: int, bias: int) -> None:
        nonlocal n
        files[f"{rel}/{n:05d}_{target}_{bias}.jpg"] = sizes[n % len(sizes)]
        n += 1

    for c in range(3):
        add(f"train/align/{c}", c, c)
        add(f"train/align/{c}", c, c)
        for sev in ("1pct", "5pct"):  # the name's bias field is not the bias: the folder says so
            add(f"train/conflict/{sev}/{c}", c, c)
        add(f"valid/{c}", c, (c + 1) % 3)
        add(f"test/{c}", c, (c + 1) % 3)
        add(f"test/{c}", c, (c + 2) % 3)
    return files


LAYOUT_FILES = {
    "cmnist": _cmnist_like(["0.5pct", "1pct"], 3, "png", valid_in_severity=True, test_flat=False),
    "bffhq": _cmnist_like(["0.5pct"], 2, "png", valid_in_severity=False, test_flat=True),
    "bar": _bar(),
    "dogs_and_cats": _cmnist_like(["1pct", "5pct"], 2, "jpg", valid_in_severity=True, test_flat=False),
}


def write_layouts(dest: Path = HERE) -> None:
    for dataset, files in LAYOUT_FILES.items():
        for i, (rel, (w, h)) in enumerate(sorted(files.items())):
            path = dest / dataset / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            colour = np.array([(37 * i) % 256, (91 * i) % 256, (53 * i) % 256], np.uint8)
            img = Image.fromarray(np.broadcast_to(colour, (h, w, 3)).copy(), "RGB")
            img.save(path, quality=90) if path.suffix == ".jpg" else img.save(path, optimize=True)


if __name__ == "__main__":
    write_layouts(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
