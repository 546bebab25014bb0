"""The BiasEnsemble / DisEnt folder reader and packer, on a hand-built layout of tiny PNGs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from debiaslab import bias_folder
from debiaslab.bias_folder import pack_bias_folder, read_bias_folder
from debiaslab.data import PreparedSplit
from debiaslab.errors import DebiaslabError

# relative path -> pixel value of a solid 4x4 (or 6x6) image, so order and content can be checked
LAYOUT = {
    "1pct/align/0/000_0_0.png": 10,
    "1pct/align/0/001_0_0.png": 20,
    "1pct/align/1/002_1_1.png": 30,
    "1pct/conflict/0/003_0_1.png": 40,
    "1pct/conflict/1/004_1_0.jpg": 50,
    "valid/005_0_1.png": 60,
    "valid/006_1_1.png": 70,
    "test/0/007_0_0.png": 80,
    "test/1/008_1_0.png": 90,
}


def _write_image(path: Path, value: int, size: int = 4) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.full((size, size, 3), value, np.uint8), "RGB")
    img.save(path, quality=100) if path.suffix == ".jpg" else img.save(path)


@pytest.fixture
def root(tmp_path) -> Path:
    root = tmp_path / "cmnist"
    for rel, value in LAYOUT.items():
        _write_image(root / rel, value)
    (root / "1pct/align/0/.DS_Store").write_bytes(b"junk")  # hidden files are skipped
    (root / "0.5pct/align/0").mkdir(parents=True)  # another severity, not read
    return root


def test_reads_the_layout(root):
    folder = read_bias_folder(root, "1pct")
    assert list(folder) == ["train", "valid", "test"]
    assert folder.classes == [0, 1]
    train = folder["train"]
    assert [p.relative_to(root).as_posix() for p in train.paths] == list(LAYOUT)[:5]
    assert train.target.tolist() == [0, 0, 1, 0, 1]
    assert train.bias.tolist() == [0, 0, 1, 1, 0]
    assert train.aligned.tolist() == [True, True, True, False, False]
    assert train.target.dtype == np.int64 and train.aligned.dtype == bool
    paths, target, bias, aligned = folder["valid"]  # a plain tuple too
    assert [p.name for p in paths] == ["005_0_1.png", "006_1_1.png"]
    assert target.tolist() == [0, 1] and bias.tolist() == [1, 1] and aligned.tolist() == [False, True]
    assert folder["test"].target.tolist() == [0, 1] and folder["test"].bias.tolist() == [0, 0]


def test_reads_bffhq_style_variants(root):
    # DisEnt's Colored MNIST keeps valid/ inside the severity folder; BFFHQ's test set is flat
    shutil.move(root / "valid", root / "1pct" / "valid")
    for path in list((root / "test").rglob("*.png")):
        path.rename(root / "test" / path.name)
    for d in (root / "test").iterdir():
        if d.is_dir():
            d.rmdir()
    folder = read_bias_folder(root, "1pct")
    assert len(folder["valid"].paths) == 2
    assert sorted(p.name for p in folder["test"].paths) == ["007_0_0.png", "008_1_0.png"]


def test_pack_writes_arrays_and_labels(root, tmp_path):
    out = tmp_path / "packed"
    meta = pack_bias_folder(root, "1pct", out, progress=False)
    assert meta["counts"]["train"] == {"images": 5, "aligned": 3, "conflicting": 2}
    assert meta["image_size"] == [4, 4] and meta["classes"] == [0, 1]
    for split, n in (("train", 5), ("valid", 2), ("test", 2)):
        images = np.load(out / f"{split}.npy")
        labels = pd.read_csv(out / f"{split}_labels.csv")
        assert images.shape == (n, 4, 4, 3) and images.dtype == np.uint8
        assert list(labels.columns) == ["image", "target", "bias", "aligned"]
        expected = [LAYOUT[name] for name in labels["image"]]
        assert np.abs(images.reshape(n, -1).astype(int).mean(1) - expected).max() <= 2  # jpg: lossy
        assert (labels["aligned"] == (labels["target"] == labels["bias"]).astype(int)).all()
    assert PreparedSplit(out, "train").label("bias").tolist() == [0, 0, 1, 1, 0]

    _write_image(root / "valid/009_0_0.png", 5, size=6)  # a different size needs image_size
    with pytest.raises(DebiaslabError, match="009_0_0.png.*6x6"):
        pack_bias_folder(root, "1pct", tmp_path / "packed2", progress=False)
    meta = pack_bias_folder(root, "1pct", tmp_path / "packed3", image_size=8, progress=False)
    assert np.load(tmp_path / "packed3" / "valid.npy").shape == (3, 8, 8, 3)


def test_pack_with_workers_matches_serial(root, tmp_path, monkeypatch):
    monkeypatch.setattr(bias_folder, "CHUNK", 2)  # several chunks from a handful of images
    pack_bias_folder(root, "1pct", tmp_path / "serial", progress=False)
    pack_bias_folder(root, "1pct", tmp_path / "parallel", workers=2, progress=False)
    for name in ("train.npy", "valid.npy", "test.npy", "train_labels.csv"):
        assert (tmp_path / "serial" / name).read_bytes() == (tmp_path / "parallel" / name).read_bytes()


# --------------------------------------------------------------------------- bad input, one kind each
def test_bad_file_name(root):
    _write_image(root / "1pct/align/0/picture.png", 1)
    with pytest.raises(DebiaslabError, match=r"picture\.png: file name does not match"):
        read_bias_folder(root, "1pct")


def test_bad_extension(root):
    _write_image(root / "test/0/010_0_0.bmp", 1)
    with pytest.raises(DebiaslabError, match=r"010_0_0\.bmp: file name does not match"):
        read_bias_folder(root, "1pct")


def test_non_integer_label(root):
    _write_image(root / "valid/011_zero_1.png", 1)
    with pytest.raises(DebiaslabError, match=r"011_zero_1\.png: target label 'zero'"):
        read_bias_folder(root, "1pct")


def test_aligned_file_with_target_not_bias(root):
    _write_image(root / "1pct/align/0/012_0_1.png", 1)
    with pytest.raises(DebiaslabError, match=r"012_0_1\.png: under align/ but target 0 != bias 1"):
        read_bias_folder(root, "1pct")


def test_conflicting_file_with_target_equal_bias(root):
    _write_image(root / "1pct/conflict/1/013_1_1.png", 1)
    with pytest.raises(DebiaslabError, match=r"013_1_1\.png: under conflict/ but target == bias"):
        read_bias_folder(root, "1pct")


def test_wrong_class_folder(root):
    _write_image(root / "test/1/014_0_0.png", 1)
    with pytest.raises(DebiaslabError, match=r"014_0_0\.png: target 0 .* class folder 1/"):
        read_bias_folder(root, "1pct")


def test_file_outside_a_class_folder(root):
    _write_image(root / "1pct/conflict/015_0_1.png", 1)
    with pytest.raises(DebiaslabError, match=r"015_0_1\.png: file outside a class folder"):
        read_bias_folder(root, "1pct")


def test_symlinked_file_escaping_root(root, tmp_path):
    outside = tmp_path / "elsewhere" / "016_0_0.png"
    _write_image(outside, 1)
    os.symlink(outside, root / "test/0/017_0_0.png")
    with pytest.raises(DebiaslabError, match=r"017_0_0\.png: resolves to .*outside the dataset root"):
        read_bias_folder(root, "1pct")


def test_symlinked_folder_escaping_root(root, tmp_path):
    _write_image(tmp_path / "elsewhere" / "018_1_1.png", 1)
    os.symlink(tmp_path / "elsewhere", root / "1pct/align/5", target_is_directory=True)
    with pytest.raises(DebiaslabError, match=r"align/5: resolves to .*outside the dataset root"):
        read_bias_folder(root, "1pct")


def test_symlink_inside_root_is_fine(root):
    os.symlink(root / "test/0/007_0_0.png", root / "test/0/019_0_0.png")
    assert len(read_bias_folder(root, "1pct")["test"].paths) == 3


def test_missing_valid_folder(root):
    shutil.rmtree(root / "valid")
    with pytest.raises(DebiaslabError, match=r"valid: folder not found \(expected valid/"):
        read_bias_folder(root, "1pct")


def test_missing_severity_folder(root):
    with pytest.raises(DebiaslabError, match=r"2pct: folder not found"):
        read_bias_folder(root, "2pct")
    with pytest.raises(DebiaslabError, match="single folder name"):
        read_bias_folder(root, "../cmnist")


def test_empty_split(root):
    for path in (root / "valid").iterdir():
        path.unlink()
    with pytest.raises(DebiaslabError, match=r"valid: no images found for the valid split"):
        read_bias_folder(root, "1pct")


def test_undecodable_image_in_pack(root, tmp_path, monkeypatch):
    (root / "test/1/020_1_1.png").write_bytes(b"not a png at all")
    out = tmp_path / "packed"
    with pytest.raises(DebiaslabError, match=r"020_1_1\.png: cannot decode image"):
        pack_bias_folder(root, "1pct", out, progress=False)
    monkeypatch.setattr(bias_folder, "CHUNK", 1)  # the same error, raised in a worker process
    with pytest.raises(DebiaslabError, match=r"020_1_1\.png: cannot decode image"):
        pack_bias_folder(root, "1pct", out, workers=2, progress=False)
    assert not out.exists() and not list(tmp_path.glob(".packed.tmp-*"))  # nothing half-written


@pytest.mark.parametrize("rel, key, label, classes", [
    ("1pct/align/999999999/013_999999999_999999999.png", "target", 999999999, 3),  # a class folder of its own
    ("1pct/conflict/0/013_0_999999999.png", "bias", 999999999, 2),
    ("valid/013_99999999999999999999999_0.png", "target", 99999999999999999999999, 2),  # beyond int64
    ("test/2/013_2_2.png", "target", 2, 2),  # a class the training split does not have
])
def test_label_out_of_range_is_refused_before_packing(root, tmp_path, rel, key, label, classes):
    _write_image(root / rel, 1)
    with pytest.raises(DebiaslabError) as err:
        pack_bias_folder(root, "1pct", tmp_path / "packed", progress=False)
    assert str(err.value) == (f"{root / rel}: {key} label {label} is out of range: the training split has "
                              f"{classes} classes, so labels must be 0..{classes - 1} (class indices from 0, "
                              "without gaps)")
    assert not (tmp_path / "packed").exists()
