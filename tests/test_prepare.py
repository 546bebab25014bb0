"""prepare: the CelebA crop, resize and packing into uint8 arrays; images that fail to decode."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from debiaslab.celeba import read_celeba
from debiaslab.data import PreparedSplit
from debiaslab.errors import DebiaslabError
from debiaslab.prepare import CROP_BOX, crop_resize, prepare


def test_crop_box_is_the_celeba_crop(tmp_path):
    """A 178x218 image that is red inside rows 57-184 / cols 25-152 and blue outside."""
    img = np.zeros((218, 178, 3), np.uint8)
    img[..., 2] = 255
    img[57:185, 25:153] = (255, 0, 0)
    path = tmp_path / "x.png"
    Image.fromarray(img).save(path)
    out = crop_resize(path, 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert (out[..., 0] > 240).all() and (out[..., 2] < 15).all()
    assert CROP_BOX == (25, 57, 153, 185)


@pytest.mark.parametrize("workers", [1, 2])
def test_pack_every_split(synthfaces_dir, tmp_path, workers):
    index = read_celeba(synthfaces_dir)
    meta = prepare(index, tmp_path / "prep", image_size=16, workers=workers, progress=False)
    assert meta["counts"] == {"train": 48, "val": 6, "test": 6}
    split = PreparedSplit(tmp_path / "prep", "val")
    assert split.images.shape == (6, 16, 16, 3) and split.images.dtype == np.uint8
    assert isinstance(split.images, np.memmap)
    rows = index.split_indices("val")
    np.testing.assert_array_equal(split.label("Smiling"), index.column("Smiling")[rows])
    first = crop_resize(index.image_path(index.image_names[rows[0]]), 16)
    np.testing.assert_array_equal(split.images[0], first)
    assert list(pd.read_csv(tmp_path / "prep" / "val_labels.csv").columns[:2]) == ["image", "Bangs"]


def test_same_packing_with_one_or_two_workers(synthfaces_dir, tmp_path):
    index = read_celeba(synthfaces_dir)
    for w in (1, 2):
        prepare(index, tmp_path / f"p{w}", image_size=16, workers=w, progress=False)
    assert (tmp_path / "p1" / "train.npy").read_bytes() == (tmp_path / "p2" / "train.npy").read_bytes()


def test_undecodable_image_names_the_file(celeba_copy, tmp_path):
    (celeba_copy / "img_align_celeba" / "000050.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DebiaslabError, match=r"000050\.jpg: cannot decode image"):
        prepare(read_celeba(celeba_copy), tmp_path / "prep", image_size=16, workers=1, progress=False)
    assert not (tmp_path / "prep").exists()  # nothing half-written


def test_missing_image_names_the_file(celeba_copy, tmp_path):
    (celeba_copy / "img_align_celeba" / "000002.jpg").unlink()
    with pytest.raises(DebiaslabError, match=r"000002\.jpg: image file not found"):
        prepare(read_celeba(celeba_copy), tmp_path / "prep", image_size=16, workers=2, progress=False)


def test_wrong_image_size(celeba_copy, tmp_path):
    Image.new("RGB", (100, 100)).save(celeba_copy / "img_align_celeba" / "000001.jpg")
    with pytest.raises(DebiaslabError, match=r"000001\.jpg: image is 100x100, expected 178x218"):
        prepare(read_celeba(celeba_copy), tmp_path / "prep", image_size=16, workers=1, progress=False)


def test_missing_prepared_split(tmp_path):
    with pytest.raises(DebiaslabError, match="run the prepare stage"):
        PreparedSplit(tmp_path, "train")
