"""The multi-label table (data.table): checked line by line, packed by the prepare stage into the
files every stage reads, and run through train_multilabel -> leakage with multilabel.protected."""

import json
import os
import runpy
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from PIL import Image
from test_coco_import import FIXTURES, OBJECTS, instances, make_coco

from debiaslab.coco_import import build_table
from debiaslab.data import PreparedSplit, check_both_values, multilabel_columns
from debiaslab.errors import DebiaslabError
from debiaslab.params import DataParams, MultilabelParams, load_params
from debiaslab.table import pack_table, read_table, square_resize

WANG = [FIXTURES / "wang" / f"{s}.data" for s in ("train", "val", "test")]


@pytest.fixture
def coco(tmp_path):
    """A COCO folder with table.csv: Wang et al.'s split, both genders in every split."""
    root = make_coco(tmp_path / "coco")
    build_table(instances(root), WANG, root, root / "table.csv", exclude=["person"])
    return root


def test_pack_gives_the_prepared_format(coco, tmp_path):
    index = read_table(coco, "table.csv")
    meta = pack_table(index, tmp_path / "prep", image_size=8, workers=1, progress=False)
    assert meta["counts"] == {"train": 9, "val": 6, "test": 2} and meta["table"] == "table.csv"
    table = pd.read_csv(coco / "table.csv")
    for name in ("train", "val", "test"):
        split = PreparedSplit(tmp_path / "prep", name)
        assert split.attributes == [*OBJECTS, "male"]
        assert split.images.shape == (len(split), 8, 8, 3) and split.images.dtype == np.uint8
        rows = table[table["split"] == name]
        np.testing.assert_array_equal(split.label_matrix(split.attributes), rows[split.attributes])
        assert list(split.labels["image"]) == list(rows["image"])
        np.testing.assert_array_equal(split.images[0], square_resize(coco / rows["image"].iloc[0], 8))


@pytest.mark.parametrize("shape", [(10, 30), (30, 10)])
def test_square_resize_keeps_the_central_square(tmp_path, shape):
    h, w = shape
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = 255  # red margins, a green central square
    if w > h:
        img[:, 10:20] = (0, 255, 0)
    else:
        img[10:20] = (0, 255, 0)
    Image.fromarray(img).save(tmp_path / "x.png")
    out = square_resize(tmp_path / "x.png", 4)
    assert out.shape == (4, 4, 3) and (out[..., 1] == 255).all() and (out[..., 0] == 0).all()


# --------------------------------------------------------------------------- malformed tables
HEADER = "image,split,dog,cup,male\n"
GOOD = {"train": "train2014/COCO_train2014_000000000009.jpg", "val": "val2014/COCO_val2014_000000000073.jpg",
        "test": "val2014/COCO_val2014_000000000074.jpg"}


def lines(**changes):
    rows = {s: f"{GOOD[s]},{s},0,1,{int(s != 'test')}\n" for s in GOOD}
    rows.update(changes)
    return HEADER + "".join(rows.values())


@pytest.mark.parametrize(("text", "message"), [
    (lines(val=f"{GOOD['val']},val,2,1,1\n"), r"table\.csv line 3: column 'dog' is '2', expected 0 or 1"),
    (lines(val=f"{GOOD['val']},val,0,yes,1\n"), r"line 3: column 'cup' is 'yes', expected 0 or 1"),
    (lines(val=f"{GOOD['val']},val,0,1,\n"), r"line 3: column 'male' is '', expected 0 or 1"),
    (lines(val=f"{GOOD['val']},dev,0,1,1\n"), r"line 3: split is 'dev', expected one of train, val, test"),
    (lines(val=""), r"table\.csv: the val split has no rows; expected rows of each of train, val, test"),
    (lines(val=f"{GOOD['train']},val,0,1,1\n"),
     r"line 3: image 'train2014/COCO_train2014_000000000009\.jpg' appears again \(first on line 2\)"),
    (lines(val=f"train2014/./{GOOD['train'].split('/')[1]},val,0,1,1\n"),  # the same file, spelt otherwise
     r"line 3: image 'train2014/\./COCO_train2014_000000000009\.jpg' appears again \(first on line 2 as "),
    (lines(val="../coco/x.jpg,val,0,1,1\n"), r"line 3: image path '\.\./coco/x\.jpg' must be relative"),
    (lines(val="/etc/passwd,val,0,1,1\n"), r"line 3: image path '/etc/passwd' must be relative"),
    (lines(val="val2014/nope.jpg,val,0,1,1\n"), r"line 3: image 'val2014/nope\.jpg': file not found in "),
    (lines(val=f"{GOOD['val']},val,0,1\n"), r"line 3: 4 fields, expected 5 \(one per header column\)"),
    (lines().replace("split", "partition"), r"table\.csv line 1: no 'split' column"),
    (lines().replace("image,", "path,"), r"table\.csv line 1: no 'image' column"),
    (lines().replace("cup", "dog"), r"line 1: column 'dog' appears twice"),
    ("image,split,male\n" + f"{GOOD['train']},train,1\n",
     r"line 1: 1 label column\(s\); expected at least two 0/1 columns"),
    ("", r"table\.csv: empty; expected a header line"),
])
def test_malformed_tables_are_one_line(coco, text, message):
    (coco / "table.csv").write_text(text)
    with pytest.raises(DebiaslabError, match=message) as err:
        read_table(coco, "table.csv")
    assert "\n" not in str(err.value)


def test_missing_table_and_folder(coco, tmp_path):
    with pytest.raises(DebiaslabError, match=r"nope\.csv: table not found \(data\.table names a CSV file"):
        read_table(coco, "nope.csv")
    with pytest.raises(DebiaslabError, match=r"absent: data folder not found \(set data\.root"):
        read_table(tmp_path / "absent", "table.csv")


def test_a_symlink_out_of_the_root_is_refused(coco, tmp_path):
    outside = tmp_path / "outside.jpg"
    Image.new("RGB", (8, 8)).save(outside)
    os.symlink(outside, coco / "val2014" / "link.jpg")
    (coco / "table.csv").write_text(lines(val="val2014/link.jpg,val,0,1,1\n"))
    with pytest.raises(DebiaslabError, match=r"link\.jpg resolves outside .*coco \(the pipeline reads only"):
        read_table(coco, "table.csv")


def test_an_undecodable_image_leaves_nothing_behind(coco, tmp_path):
    (coco / "val2014" / "COCO_val2014_000000000074.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(DebiaslabError, match=r"COCO_val2014_000000000074\.jpg: cannot decode image"):
        pack_table(read_table(coco, "table.csv"), tmp_path / "prep", image_size=8, workers=1,
                   progress=False)
    assert not (tmp_path / "prep").exists() and not list(tmp_path.glob(".prep*"))


@pytest.mark.parametrize("table", ["../table.csv", "/data/coco/table.csv", "a/../../t.csv", ""])
def test_data_table_must_name_a_file_inside_the_root(tmp_path, table):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"table": table}}))
    with pytest.raises(DebiaslabError, match=r"params\.yaml: data\.table: expected a file name inside "
                                             r"data\.root \(e\.g\. table\.csv\)"):
        load_params("data", path=tmp_path / "params.yaml")
    assert DataParams().table is None and MultilabelParams().protected is None  # CelebA by default


# --------------------------------------------------------------------------- the multi-label stages
def test_protected_column_missing_or_of_one_value(coco, tmp_path):
    pack_table(read_table(coco, "table.csv"), tmp_path / "prep", image_size=8, workers=1, progress=False)
    val = PreparedSplit(tmp_path / "prep", "val")
    assert multilabel_columns(val, "male", ["Eyeglasses"]) == (OBJECTS, "male")
    assert multilabel_columns(val, "dog", ["Eyeglasses"])[0] == [o for o in [*OBJECTS, "male"] if o != "dog"]
    with pytest.raises(DebiaslabError, match=r"prep: no attribute 'Eyeglasses' in the prepared data \(valid: "
                                             r"bicycle, .*male\); set multilabel\.protected"):
        multilabel_columns(val, None, ["Eyeglasses"])
    with pytest.raises(DebiaslabError, match=r"no attribute 'gender'"):
        multilabel_columns(val, "gender", ["Eyeglasses"])
    test = PreparedSplit(tmp_path / "prep", "test")
    with pytest.raises(DebiaslabError, match=r"the test split has bicycle=0 on every one of its 2 images; "
                                             r"the adversary and the leakage attacker need both values"):
        multilabel_columns(test, "bicycle", ["Eyeglasses"])
    check_both_values(val, OBJECTS)
    with pytest.raises(DebiaslabError, match=r"prep: label 'bicycle' is 0 on every image of the test split; "
                                             r"the multi-label classifier needs both values .*--exclude\)$"):
        check_both_values(test, OBJECTS)


def test_celeba_format_default_is_unchanged(synthfaces_dir, tmp_path):
    from debiaslab.celeba import read_celeba
    from debiaslab.prepare import prepare

    prepare(read_celeba(synthfaces_dir), tmp_path / "prep", image_size=8, workers=1, progress=False)
    split = PreparedSplit(tmp_path / "prep", "train")
    labels, protected = multilabel_columns(split, None, ["Eyeglasses", "Bangs"])
    assert protected == "Eyeglasses" and labels == [a for a in split.attributes
                                                    if a not in ("Eyeglasses", "Bangs")]


def run_stage(script, *args):
    old = sys.argv
    sys.argv = [script, *args]
    try:
        runpy.run_path(str(REPO / "stages" / script), run_name="__main__")
    finally:
        sys.argv = old


def write_params(workdir, coco, **groups):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"] = {"root": str(coco), "table": "table.csv"}
    params["prepare"] = {"image_size": 16, "workers": 1}
    params["train"].update(epochs=1, width=8, batch_size=8, precision="fp32", device="cpu")
    params["multilabel"] = {"protected": "male"}
    params["leakage"].update(rounds=1, epochs=2, batch_size=4, p_grid=[0.0, 0.5], max_rows=20)
    for group, values in groups.items():
        params[group].update(values)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))


def test_prepare_train_multilabel_leakage_run_on_coco(coco, tmp_path, monkeypatch, capsys):
    """The stages of the default run, on the table: the same scripts and files, no other change."""
    workdir = tmp_path / "repo"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    write_params(workdir, coco)
    before = {p: p.stat().st_mtime_ns for p in coco.rglob("*")}
    run_stage("prepare.py")
    assert json.loads((workdir / "data/prepared/meta.json").read_text())["attributes"] == [*OBJECTS, "male"]
    for method in ("erm", "adversarial", "image_adversarial"):  # params.yaml's methods.multilabel
        run_stage("train_multilabel.py", method)
    run_stage("leakage.py")
    report = json.loads((workdir / "metrics/leakage.json").read_text())
    assert report["protected"] == "male" and report["labels"] == OBJECTS
    assert set(report["models"]) == {"erm", "adversarial", "image_adversarial"}
    for model in report["models"].values():
        assert 0.5 <= model["model_leakage"]["mean"] <= 1.0 and np.isfinite(model["mAP"])
    assert (workdir / "reports/leakage/natural_leakage.png").is_file()
    assert (workdir / "reports/leakage/masks.png").is_file()
    assert {p: p.stat().st_mtime_ns for p in coco.rglob("*")} == before  # data.root is only read
    capsys.readouterr()

    # without multilabel.protected the stage protects attributes.protected[0], absent here
    write_params(workdir, coco, multilabel={"protected": None})
    with pytest.raises(SystemExit) as exit_:
        run_stage("train_multilabel.py", "erm")
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: train_multilabel: data/prepared: no attribute 'Eyeglasses' in the "
                              "prepared data (valid: bicycle,")
    assert err[-1].endswith("; set multilabel.protected to the protected column")


def test_prepare_stage_reports_a_bad_table_in_one_line(coco, tmp_path, monkeypatch, capsys):
    workdir = tmp_path / "repo"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    write_params(workdir, coco)
    (coco / "table.csv").write_text(lines(test=f"{GOOD['test']},test,0,1,x\n"))
    with pytest.raises(SystemExit) as exit_:
        run_stage("prepare.py")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    table = coco.resolve() / "table.csv"
    last = err.strip().splitlines()[-1]
    assert last == f"error: prepare: {table} line 4: column 'male' is 'x', expected 0 or 1"
    assert not (workdir / "data").exists()  # nothing written
