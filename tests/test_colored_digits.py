"""Colored Digits: bias protocol, file layout, source split and determinism, on a small run."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from debiaslab import colored_digits
from debiaslab.bias_folder import read_bias_folder
from debiaslab.colored_digits import (
    PALETTE,
    load_sources,
    plan_colored_digits,
    severity_dir,
    split_sources,
    write_colored_digits,
)
from debiaslab.errors import DebiaslabError

N_TRAIN, N_VALID, N_TEST = 600, 100, 100
SEVERITIES = (1, 5)
NAME = re.compile(r"^(\d+)_(\d+)_(\d+)\.png$")


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Iterator[tuple[Path, dict]]:
    root = tmp_path_factory.mktemp("cd") / "colored_digits"
    stats = write_colored_digits(root, severities=SEVERITIES, n_train=N_TRAIN, n_valid=N_VALID,
                                 n_test=N_TEST, seed=3, progress=False)
    yield root, stats
    # delete the ~1,400 files now, while cheap, rather than in a later session's tmp cleanup
    shutil.rmtree(root, ignore_errors=True)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_layout_and_names(generated):
    root, stats = generated
    assert sorted(p.name for p in root.iterdir()) == ["1pct", "5pct", "meta.json", "test", "valid"]
    assert not list(root.parent.glob(".*tmp-*")), "temporary folder left behind"
    for pct in ("1pct", "5pct"):
        assert sorted(p.name for p in (root / pct).iterdir()) == ["align", "conflict"]
        for sub in ("align", "conflict"):
            for path in _files(root / pct / sub):
                m = NAME.match(path.name)
                assert m, path
                target, bias = int(m[2]), int(m[3])
                assert path.parent.name == str(target) and path.parent.parent.name == sub
                assert (target == bias) == (sub == "align"), path
    assert all(p.parent == root / "valid" and NAME.match(p.name) for p in _files(root / "valid"))
    for path in _files(root / "test"):
        m = NAME.match(path.name)
        assert m and path.parent.name == m[2], path
    assert stats["counts"] == {
        "1pct/align": 594, "1pct/conflict": 6, "5pct/align": 570, "5pct/conflict": 30,
        "valid": N_VALID, "test": N_TEST}
    assert len(_files(root / "valid")) == N_VALID and len(_files(root / "test")) == N_TEST


@pytest.mark.parametrize("pct", SEVERITIES)
def test_conflicting_fraction_matches_severity(generated, pct):
    root, _ = generated
    folder = read_bias_folder(root, severity_dir(pct))
    train = folder["train"]
    assert len(train.paths) == N_TRAIN
    assert abs((~train.aligned).mean() - pct / 100) <= 1 / N_TRAIN
    assert np.all(train.target[train.aligned] == train.bias[train.aligned])
    # conflicting samples are spread over the classes and over the other nine colours
    conflict = ~train.aligned
    assert np.bincount(train.target[conflict], minlength=10).max() <= np.ceil(pct / 100 * 70)
    assert folder.classes == list(range(10))


def test_valid_and_test_are_unbiased(generated):
    root, _ = generated
    folder = read_bias_folder(root, "1pct")
    for split in ("valid", "test"):
        conflict_share = (~folder[split].aligned).mean()
        assert abs(conflict_share - 0.9) < 0.05, (split, conflict_share)
    # a larger plan (labels only, nothing rendered): every colour equally frequent within each digit
    plan = plan_colored_digits(severities=[1], n_train=100, n_valid=100, n_test=5000, seed=3)
    table = np.zeros((10, 10), np.int64)
    np.add.at(table, (plan["test"]["target"], plan["test"]["bias"]), 1)
    class_sizes = table.sum(1, keepdims=True)
    assert np.all(np.abs(table - class_sizes / 10) <= 1)


def test_pixels_carry_the_bias_colour(generated):
    root, _ = generated
    paths = _files(root / "5pct") + _files(root / "test")
    directions = PALETTE / np.linalg.norm(PALETTE, axis=1, keepdims=True)
    for path in paths:
        with Image.open(path) as img:
            assert img.mode == "RGB" and img.size == (28, 28)
            rgb = np.asarray(img, dtype=np.float64)
        assert (rgb.max(-1) == 0).mean() > 0.3, f"{path}: background not black"
        total = rgb.reshape(-1, 3).sum(0)
        nearest = int(np.argmax(directions @ (total / np.linalg.norm(total))))
        assert nearest == int(NAME.match(path.name)[3]), path


def test_source_split_is_disjoint_and_stratified(generated):
    _, targets = load_sources()
    split = split_sources(targets, seed=3)
    train, valid, test = (set(split[k].tolist()) for k in ("train", "valid", "test"))
    assert not (train & valid) and not (train & test) and not (valid & test)
    assert len(train | valid | test) == len(targets) == 1797
    for name, frac in (("train", 0.70), ("valid", 0.15), ("test", 0.15)):
        per_class = np.bincount(targets[split[name]], minlength=10) / np.bincount(targets)
        assert np.all(np.abs(per_class - frac) < 0.01), name
    # each rendered split draws only from its own sources, and meta.json records the split
    plan = plan_colored_digits(severities=[1], n_train=N_TRAIN, n_valid=N_VALID, n_test=N_TEST, seed=3)
    for name in ("train", "valid", "test"):
        assert set(plan[name]["source"].tolist()) <= set(split[name].tolist())
        assert np.array_equal(plan[name]["target"], targets[plan[name]["source"]])
    root, _ = generated
    meta = json.loads((root / "meta.json").read_text())
    assert {k: sorted(v) for k, v in meta["source_split"].items()} == \
        {k: sorted(v.tolist()) for k, v in split.items()}


def test_same_seed_same_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(colored_digits, "CHUNK", 64)  # several seeding chunks from few images

    def run(name, seed, workers):
        out = tmp_path / name
        write_colored_digits(out, severities=[5], n_train=150, n_valid=20, n_test=30,
                             seed=seed, workers=workers, progress=False)
        return {p.relative_to(out).as_posix(): p.read_bytes() for p in _files(out) if p.suffix == ".png"}

    try:
        first = run("a", 7, 1)
        assert first == run("b", 7, 2)  # the worker count does not change a byte
        assert first != run("c", 8, 1)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_bad_parameters():
    with pytest.raises(DebiaslabError, match="severity 100"):
        plan_colored_digits(severities=[100], n_train=100, n_valid=100, n_test=100, seed=0)
    with pytest.raises(DebiaslabError, match="n_valid"):
        plan_colored_digits(severities=[1], n_train=100, n_valid=3, n_test=100, seed=0)
    assert [severity_dir(s) for s in (0.5, 1, 2.0, 5)] == ["0.5pct", "1pct", "2pct", "5pct"]
