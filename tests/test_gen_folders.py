"""Generated data a user brings in Dr-Fairness's layout (gen_data.root) and the fair_cells stage.

The fixtures are small folders in the layout Dr-Fairness's README and preprocessing_celeba.py read:
one folder per attribute combination, named by its values joined with underscores in the order
age_gender_smile_glasses_haircolor (``young_female_smile_glasses_blackhair/``), images directly
inside. Every image is one solid colour that encodes its cell, so a packed row shows where it
came from: red = 40 + 160·Smiling, green = 40 + 160·Eyeglasses, blue = 40 + 160·Male.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from PIL import Image

from debiaslab.check_params import check_interpolations
from debiaslab.errors import DebiaslabError
from debiaslab.gen_folders import is_project_generated, load_gen_image, pack_gen_images, read_gen_folders
from debiaslab.params import DRFAIRNESS_TOKENS, GenDataParams, load_params
from debiaslab.prepare import crop_resize_image

TOKENS = {a: dict(m) for a, m in DRFAIRNESS_TOKENS.items()}
SMILE = {1: "smile", 0: "nosmile"}
GLASSES = {1: "glasses", 0: "noglasses"}
GENDER = {1: "male", 0: "female"}


def colour(smile: int, glasses: int, male: int) -> tuple[int, int, int]:
    return 40 + 160 * smile, 40 + 160 * glasses, 40 + 160 * male


def combo(smile: int, glasses: int, male: int, age: str = "young", hair: str = "blackhair") -> str:
    return f"{age}_{GENDER[male]}_{SMILE[smile]}_{GLASSES[glasses]}_{hair}"


def write_gen_folders(root: Path, n: int = 3, size: tuple[int, int] = (20, 20), ext: str = "png",
                      skip: tuple = ()) -> Path:
    """Eight combination folders (Smiling x Eyeglasses x Male; young, black hair) of ``n`` images:
    each (Smiling, Eyeglasses) cell pools a female and a male folder. ``skip``: (smile, glasses)
    cells left out."""
    for smile in (0, 1):
        for glasses in (0, 1):
            if (smile, glasses) in skip:
                continue
            for male in (0, 1):
                folder = root / combo(smile, glasses, male)
                folder.mkdir(parents=True)
                for i in range(n):
                    Image.new("RGB", size, colour(smile, glasses, male)).save(folder / f"{i:04d}.{ext}")
    return root


@pytest.fixture
def gen_root(tmp_path) -> Path:
    return write_gen_folders(tmp_path / "gen")


def read(root, target="Smiling", protected="Eyeglasses", tokens=None):
    return read_gen_folders(root, target, protected, TOKENS if tokens is None else tokens)


def one_line_error(call, *fragments) -> str:
    with pytest.raises(DebiaslabError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --------------------------------------------------------------------------- reading
def test_each_folder_goes_to_the_cell_its_tokens_name(gen_root):
    found = read(gen_root)
    assert len(found.paths) == 24 and found.y.dtype == np.int64
    for path, y, g in zip(found.paths, found.y, found.g, strict=True):
        parts = path.parent.name.split("_")
        assert y == ("smile" in parts) and g == ("glasses" in parts)
    assert found.paths == sorted(found.paths)  # folder, then file name order: reproducible draws


def test_folders_sharing_a_cell_are_pooled(gen_root):
    found = read(gen_root)
    assert found.folders[1, 0] == [combo(1, 0, 0), combo(1, 0, 1)]  # female and male folders
    for y in (0, 1):
        for g in (0, 1):
            assert np.sum((found.y == y) & (found.g == g)) == 6


def test_any_attribute_pair_the_names_carry(gen_root):
    """Gender as the target, smiling as the group: the tokens, not the positions, decide."""
    found = read(gen_root, "Male", "Smiling")
    for path, y, g in zip(found.paths, found.y, found.g, strict=True):
        parts = path.parent.name.split("_")
        assert y == ("male" in parts) and g == ("smile" in parts)


def test_tokens_may_merge_values_and_ignore_the_rest(tmp_path):
    """Hair colour (three values in Dr-Fairness) as the binary Black_Hair; age is ignored."""
    root = tmp_path / "gen"
    for hair in ("blackhair", "blondhair", "otherhair"):
        for glasses in (0, 1):
            for age in ("young", "old"):
                folder = root / combo(0, glasses, 0, age=age, hair=hair)
                folder.mkdir(parents=True)
                for i in range(2):
                    Image.new("RGB", (8, 8)).save(folder / f"{i}.jpg")
    found = read(root, "Black_Hair", "Eyeglasses")
    assert np.sum(found.y == 1) == 8 and np.sum(found.y == 0) == 16


def test_the_project_generated_folder_is_recognised_however_spelt(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for spelling in ("data/generated", "./data/generated", "data//generated/",
                     str(tmp_path / "data" / "generated")):
        assert is_project_generated(spelling)
    assert not is_project_generated("data/generated/Smiling") and not is_project_generated("/data/lace")


# --------------------------------------------------------------------------- packing
def test_images_are_resized_and_packed_like_real_data(tmp_path):
    square = tmp_path / "square.png"
    Image.new("RGB", (64, 64), (10, 200, 30)).save(square)
    tall = tmp_path / "tall.png"  # 40x60: the central 40x40 square is green, the bands above and below red
    bands = np.zeros((60, 40, 3), np.uint8)
    bands[:, :] = (255, 0, 0)
    bands[10:50] = (0, 255, 0)
    Image.fromarray(bands).save(tall)
    celeba = tmp_path / "celeba.jpg"  # CelebA's aligned size gets the real data's crop exactly
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(celeba)
    out = tmp_path / "images.npy"
    pack_gen_images([square, tall, celeba], out, 16, workers=1, progress=False)
    packed = np.load(out)
    assert packed.shape == (3, 16, 16, 3) and packed.dtype == np.uint8
    assert (packed[0] == (10, 200, 30)).all()
    assert (packed[1] == (0, 255, 0)).all()
    with Image.open(celeba) as img:
        assert np.array_equal(packed[2], crop_resize_image(img, 16))


def test_load_accepts_grey_and_alpha_images(tmp_path):
    for mode, value in (("L", 90), ("RGBA", (90, 90, 90, 128)), ("P", 0)):
        path = tmp_path / f"{mode}.png"
        Image.new(mode, (12, 12), value).save(path)
        assert load_gen_image(path, 8).shape == (8, 8, 3)


# --------------------------------------------------------------------------- malformed folders
def test_no_root(tmp_path):
    one_line_error(lambda: read(tmp_path / "absent"), f"{tmp_path / 'absent'}: gen_data.root not found",
                   "young_female_smile_glasses_blackhair/")


def test_root_is_a_file(tmp_path):
    (tmp_path / "gen.zip").write_bytes(b"PK")
    one_line_error(lambda: read(tmp_path / "gen.zip"), "gen.zip: gen_data.root is not a folder")


def test_empty_root(tmp_path):
    (tmp_path / "gen").mkdir()
    (tmp_path / "gen" / ".DS_Store").write_bytes(b"")  # hidden entries are skipped
    one_line_error(lambda: read(tmp_path / "gen"), "gen: gen_data.root holds no folders",
                   "one folder per attribute combination")


def test_folder_without_a_target_token(gen_root):
    (gen_root / "young_female_glasses_blackhair").mkdir()
    one_line_error(lambda: read(gen_root), "young_female_glasses_blackhair: folder name has no Smiling token",
                   "expected exactly one of: smile, nosmile", "gen_data.tokens.Smiling")


def test_folder_with_two_target_tokens(gen_root):
    (gen_root / "young_female_smile_nosmile_glasses_blackhair").mkdir()
    one_line_error(lambda: read(gen_root), "young_female_smile_nosmile_glasses_blackhair: folder name has "
                   "2 Smiling tokens (smile, nosmile)")


def test_folder_without_a_group_token(gen_root):
    (gen_root / "young_female_smile_blackhair").mkdir()
    one_line_error(lambda: read(gen_root), "folder name has no Eyeglasses token",
                   "expected exactly one of: glasses, noglasses")


def test_a_loose_file_in_the_root(gen_root):
    Image.new("RGB", (4, 4)).save(gen_root / "0001.png")
    one_line_error(lambda: read(gen_root), "0001.png: a file directly in gen_data.root",
                   "one combination folder? point it at the folder above")


def test_a_nested_folder(gen_root):
    (gen_root / combo(1, 1, 0) / "more").mkdir()
    one_line_error(lambda: read(gen_root), f"{combo(1, 1, 0)}/more: unexpected folder inside a "
                   "combination folder")


def test_unknown_file_in_a_combination_folder(gen_root):
    (gen_root / combo(0, 1, 1) / "notes.txt").write_text("seed 3")
    one_line_error(lambda: read(gen_root), "notes.txt: not an image file (expected png, jpg, jpeg files")


def test_an_empty_combination_folder(gen_root):
    (gen_root / "old_male_nosmile_glasses_blondhair").mkdir()
    one_line_error(lambda: read(gen_root), "old_male_nosmile_glasses_blondhair: no images")


def test_a_missing_cell(tmp_path):
    root = write_gen_folders(tmp_path / "gen", skip=((1, 0),))
    one_line_error(lambda: read(root), "gen: no folder for cell (Smiling=1, Eyeglasses=0)",
                   "names hold smile and noglasses")


def test_a_cell_with_one_image(gen_root):
    for folder in (combo(0, 1, 0), combo(0, 1, 1)):
        for path in sorted((gen_root / folder).iterdir()):
            path.unlink()
    (gen_root / combo(0, 1, 1)).rmdir()
    Image.new("RGB", (4, 4)).save(gen_root / combo(0, 1, 0) / "only.png")
    one_line_error(lambda: read(gen_root), f"only 1 image (in {combo(0, 1, 0)}/) for cell "
                   "(Smiling=0, Eyeglasses=1)", "at least two")


def test_a_symlink_leaving_the_root(gen_root, tmp_path):
    outside = write_gen_folders(tmp_path / "elsewhere", n=1)
    os.symlink(outside / combo(1, 1, 1), gen_root / "old_male_smile_glasses_otherhair")
    one_line_error(lambda: read(gen_root), "old_male_smile_glasses_otherhair: resolves to",
                   "outside gen_data.root")


def test_a_linked_folder_inside_the_root_is_not_counted_twice(gen_root):
    os.symlink(gen_root / combo(1, 1, 1), gen_root / "old_male_smile_glasses_otherhair")
    one_line_error(lambda: read(gen_root), "the same file as", "expected each generated image once")


def test_no_token_map_for_the_target(gen_root):
    tokens = {k: v for k, v in TOKENS.items() if k != "Smiling"}
    one_line_error(lambda: read(gen_root, tokens=tokens),
                   "gen_data.tokens: no token map for Smiling (the target)")


def test_a_root_overlapping_the_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_gen_folders(tmp_path / "data" / "cells" / "Smiling")
    one_line_error(lambda: read("data/cells/Smiling"), "overlaps data/cells, which fair_cells writes")


def test_an_unreadable_image(gen_root, tmp_path):
    bad = gen_root / combo(1, 1, 0) / "0001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    found = read(gen_root)  # listed: images are decoded only when drawn
    one_line_error(lambda: pack_gen_images(found.paths, tmp_path / "x.npy", 8, progress=False),
                   f"{bad}: cannot decode image")  # the stage writes through atomic_path: see below


# --------------------------------------------------------------------------- params
@pytest.mark.parametrize(("tokens", "message"), [
    ({"Smiling": {"smile": 2, "nosmile": 0}}, "gen_data.tokens.Smiling.smile: expected 0 or 1, got 2 "
                                              "(targets and groups are binary here"),
    ({"Smiling": {"smile": True, "nosmile": 0}},
     "gen_data.tokens.Smiling.smile: expected an integer, got True"),
    ({"Smiling": {"no_smile": 0, "smile": 1}}, "gen_data.tokens.Smiling: token 'no_smile': expected a "
                                               "non-empty word without _"),
    ({"Smiling": {"smile": 1, "grin": 1}}, "gen_data.tokens.Smiling: expected tokens for both labels 0 "
                                           "and 1, got only 1"),
    ({"Smile": {"smile": 1, "nosmile": 0}}, "gen_data.tokens: unknown attribute 'Smile'"),
])
def test_token_maps_are_checked_on_load(tmp_path, tokens, message):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"gen_data": {"tokens": tokens}}))
    one_line_error(lambda: load_params("gen_data", path=path), message)


def test_default_gen_data_is_the_projects_own_with_drfairness_tokens():
    params = load_params("gen_data", path=REPO / "params.yaml")["gen_data"]
    assert params == GenDataParams() and params.root == "data/generated"
    assert params.tokens["Smiling"] == {"smile": 1, "nosmile": 0}
    assert params.tokens["Eyeglasses"] == {"glasses": 1, "noglasses": 0}


def test_check_params_accepts_the_default_root_and_refuses_an_absent_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/generated here: a stage writes into it, so it passes
    dvc_yaml = yaml.safe_load((REPO / "dvc.yaml").read_text())
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    check_interpolations(params, dvc_yaml)
    params["gen_data"]["root"] = str(tmp_path / "lace")
    one_line_error(lambda: check_interpolations(params, dvc_yaml),
                   "gen_data.root: ", "lace: not found, and no stage in dvc.yaml writes it")
    write_gen_folders(tmp_path / "lace", n=1)
    check_interpolations(params, dvc_yaml)


# --------------------------------------------------------------------------- the stage
@pytest.fixture(scope="module")
def fair_cells():
    spec = importlib.util.spec_from_file_location("fair_cells_stage", REPO / "stages" / "fair_cells.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def stage_dir(tmp_path, monkeypatch, root, **fair) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["gen_data"]["root"] = str(root)
    params["fair_cells"].update({"per_cell": 2, "val_per_cell": 1, **fair})
    params["prepare"].update({"image_size": 8, "workers": 1})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_stage_packs_a_users_folders_into_the_cells(fair_cells, tmp_path, monkeypatch):
    write_gen_folders(tmp_path / "gen", n=3, size=(30, 30), ext="jpg")
    stage_dir(tmp_path, monkeypatch, "gen")  # relative: resolved against the repository root
    fair_cells(["Smiling"])
    images = np.load("data/cells/Smiling/images.npy")
    cells = pd.read_csv("data/cells/Smiling/cells.csv")
    assert images.shape == (12, 8, 8, 3) and images.dtype == np.uint8
    assert list(cells.columns) == ["y", "g", "split", "image"]
    assert cells.groupby(["y", "g", "split"]).size().to_dict() == {
        (y, g, s): n for y in (0, 1) for g in (0, 1) for s, n in (("train", 2), ("val", 1))}
    for row, image in zip(cells.itertuples(), images, strict=True):
        parts = Path(row.image).parent.name.split("_")
        assert (row.y, row.g) == ("smile" in parts, "glasses" in parts)
        expected = colour(row.y, row.g, "male" in parts)
        assert np.abs(image.astype(int) - expected).max() <= 3  # JPEG of a solid colour
    report = json.loads(Path("metrics/cells/Smiling.json").read_text())
    assert report["train"] == {"t0_g0": 2, "t0_g1": 2, "t1_g0": 2, "t1_g1": 2}
    assert report["available"]["t1_g1"] == 6 and report["folders"]["t1_g1"] == 2


def test_stage_draws_the_same_cells_again(fair_cells, tmp_path, monkeypatch):
    write_gen_folders(tmp_path / "gen", n=4)
    stage_dir(tmp_path, monkeypatch, tmp_path / "gen")
    fair_cells(["Smiling"])
    files = [Path("data/cells/Smiling/cells.csv"), Path("data/cells/Smiling/images.npy")]
    first = [f.read_bytes() for f in files]
    fair_cells(["Smiling"])
    assert [f.read_bytes() for f in files] == first


def test_stage_error_is_one_line_and_writes_nothing(fair_cells, tmp_path, monkeypatch, capsys):
    root = write_gen_folders(tmp_path / "gen", n=2)
    (root / combo(1, 0, 1) / "0001.png").write_bytes(b"not a png")
    stage_dir(tmp_path, monkeypatch, root, per_cell=10)  # every image is drawn
    earlier = tmp_path / "data" / "cells" / "Smiling"
    earlier.mkdir(parents=True)
    (earlier / "cells.csv").write_text("earlier\n")
    with pytest.raises(SystemExit) as exit_:
        fair_cells(["Smiling"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.endswith("\n")
    last = err.splitlines()[-1]  # after the progress bar, which stays on its own line
    assert last.startswith(f"error: fair_cells: {root / combo(1, 0, 1) / '0001.png'}: cannot decode image")
    assert sorted(p.name for p in (tmp_path / "data" / "cells").iterdir()) == ["Smiling"]  # no temporaries
    assert [p.name for p in earlier.iterdir()] == ["cells.csv"]
    assert (earlier / "cells.csv").read_text() == "earlier\n"
    assert not (tmp_path / "metrics").exists()


def test_stage_reads_the_projects_own_generated_data_by_default(fair_cells, tmp_path, monkeypatch):
    stage_dir(tmp_path, monkeypatch, "data/generated")
    gen = tmp_path / "data" / "generated"
    (gen / "Smiling").mkdir(parents=True)
    rng = np.random.default_rng(1)
    np.save(gen / "images.npy", rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8))
    np.save(gen / "Smiling" / "pairs.npy", rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8))
    labels = pd.DataFrame({"Smiling": rng.integers(0, 2, 40), "Eyeglasses": rng.integers(0, 2, 40)})
    pairs = pd.DataFrame({"Smiling": rng.integers(0, 2, 20), "Eyeglasses": rng.integers(0, 2, 20)})
    labels.to_csv(gen / "labels.csv", index=False)
    pairs.to_csv(gen / "Smiling" / "pairs.csv", index=False)
    fair_cells(["Smiling"])
    cells = pd.read_csv("data/cells/Smiling/cells.csv")
    images = np.load("data/cells/Smiling/images.npy")
    assert list(cells.columns) == ["y", "g", "split"] and len(cells) == len(images) == 12
    every = np.concatenate([np.load(gen / "images.npy"), np.load(gen / "Smiling" / "pairs.npy")])
    both = pd.concat([labels, pairs], ignore_index=True)
    for row, image in zip(cells.itertuples(), images, strict=True):  # a generated image of its cell
        match = np.flatnonzero((every == image).all(axis=(1, 2, 3)))
        assert (both.loc[match, "Smiling"] == row.y).any() and (both.loc[match, "Eyeglasses"] == row.g).any()
    assert set(json.loads(Path("metrics/cells/Smiling.json").read_text())) == {"train", "val"}
