"""coco_import: COCO instances files and a per-image gender as a multi-label table.

The fixtures in tests/fixtures/coco/ are in COCO's real structure (info, licenses, images,
annotations with polygon and crowd RLE segmentations, categories with COCO's own, non-contiguous
ids and names) and Wang et al.'s .data format (Python 2 pickles of {file_name, image_id, objects,
gender}); the images are generated per test at the sizes the JSON gives.
"""

import csv
import json
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from PIL import Image

from debiaslab import coco_import
from debiaslab.coco_import import build_table, read_instances, read_wang_data, sanitise
from debiaslab.errors import DebiaslabError

FIXTURES = REPO / "tests" / "fixtures" / "coco"
SETS = ("train2014", "val2014")
OBJECTS = ["bicycle", "dog", "handbag", "cup", "dining_table", "teddy_bear", "toothbrush"]


def make_coco(root: Path) -> Path:
    """COCO's layout: annotations/instances_<set>.json and <set>/<file_name>, tiny JPEGs."""
    (root / "annotations").mkdir(parents=True)
    for name in SETS:
        shutil.copy(FIXTURES / f"instances_{name}.json", root / "annotations")
        (root / name).mkdir()
        for image in json.loads((FIXTURES / f"instances_{name}.json").read_text())["images"]:
            pixels = np.full((image["height"], image["width"], 3), image["id"] % 251, np.uint8)
            Image.fromarray(pixels).save(root / name / image["file_name"])
    return root


@pytest.fixture
def coco(tmp_path):
    return make_coco(tmp_path / "coco")


def instances(root):
    return [root / "annotations" / f"instances_{s}.json" for s in SETS]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run(root, gender=(FIXTURES / "gender.csv",), out=None, **kw):
    out = out or root / "table.csv"
    return build_table(instances(root), list(gender), root, out, **kw), out


# --------------------------------------------------------------------------- the fixtures
def test_fixtures_have_cocos_structure():
    for name in SETS:
        data = json.loads((FIXTURES / f"instances_{name}.json").read_text())
        assert list(data) == ["info", "licenses", "images", "annotations", "categories"]
        assert {lic["id"] for lic in data["licenses"]} >= {i["license"] for i in data["images"]}
        for image in data["images"]:
            assert set(image) == {"license", "file_name", "coco_url", "height", "width",
                                  "date_captured", "flickr_url", "id"}
            assert image["file_name"] == f"COCO_{name}_{image['id']:012d}.jpg"
        ids = [c["id"] for c in data["categories"]]
        assert ids == [1, 2, 18, 31, 47, 67, 88, 90]  # COCO's ids, with its gaps
        crowd = [a for a in data["annotations"] if a["iscrowd"]]
        assert crowd
        for ann in data["annotations"]:
            assert set(ann) == {"segmentation", "area", "iscrowd", "image_id", "bbox", "category_id", "id"}
            seg = ann["segmentation"]
            if ann["iscrowd"]:  # uncompressed RLE, column-major run lengths over the whole image
                h, w = seg["size"]
                assert sum(seg["counts"]) == h * w
            else:  # polygons
                assert all(len(p) % 2 == 0 and len(p) >= 6 for p in seg)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' mask code under NumPy 2
def test_pycocotools_reads_the_fixtures_as_we_do():
    coco_api = pytest.importorskip("pycocotools.coco")
    for name in SETS:
        path = FIXTURES / f"instances_{name}.json"
        api = coco_api.COCO(str(path))
        ours = read_instances(path)
        assert {c["id"]: c["name"] for c in api.loadCats(api.getCatIds())} == ours.categories
        for image_id in api.getImgIds():
            cats = {a["category_id"] for a in api.loadAnns(api.getAnnIds(imgIds=image_id, iscrowd=None))}
            assert cats == ours.present[image_id]
            assert api.loadImgs(image_id)[0]["file_name"] == ours.file_names[image_id]
        for ann in api.loadAnns(api.getAnnIds(iscrowd=True)):  # the crowd RLE decodes to its box
            mask = api.annToMask(ann)
            assert mask.sum() == ann["area"]


# --------------------------------------------------------------------------- the table
def test_table_has_a_column_per_category_and_gender_last(coco):
    summary, out = run(coco, exclude=["person"])
    rows = read_csv(out)
    assert list(rows[0]) == ["image", "split", *OBJECTS, "male"]  # COCO id order, person left out
    by_id = {int(r["image"][-8:-4]): r for r in rows}
    assert by_id[9] == {"image": "train2014/COCO_train2014_000000000009.jpg", "split": "train",
                        **dict.fromkeys(OBJECTS, "0"), "cup": "1", "male": "1"}  # two cups: one 1
    assert by_id[71]["cup"] == "1"  # its cups are only a crowd annotation
    assert [o for o in OBJECTS if by_id[36][o] == "1"] == ["cup", "toothbrush"]
    assert by_id[36]["male"] == "0" and by_id[49]["dining_table"] == "1"
    # 61 (a dog, no person) and 192 (no annotations) have no gender: dropped and counted
    assert 61 not in by_id and 192 not in by_id
    assert summary["dropped_without_gender"] == 2 and summary["images"] == 19
    assert summary["labels"] == 7 and summary["counts"] == {"train": 9, "val": 4, "test": 4}
    for row in rows:
        assert (coco / row["image"]).is_file()


def test_split_train2014_trains_and_val2014_is_halved(coco):
    _, out = run(coco, seed=0)
    rows = read_csv(out)
    assert {r["split"] for r in rows if r["image"].startswith("train2014/")} == {"train"}
    held = [r for r in rows if r["image"].startswith("val2014/")]
    assert sorted(r["split"] for r in held) == ["test"] * 4 + ["val"] * 4
    _, again = run(coco, seed=0, out=coco / "again.csv")
    assert again.read_bytes() == out.read_bytes()  # the halving is seeded
    assert "person" in read_csv(out)[0]  # all 8 categories without --exclude


def test_wang_et_al_data_files_give_gender_and_split(coco):
    wang = [FIXTURES / "wang" / f"{s}.data" for s in ("train", "val", "test")]
    entries = read_wang_data(wang[1])
    assert {i: (g.value, g.split) for i, g in entries.items()} == {
        73: (1, "val"), 74: (0, "val"), 133: (1, "val"), 136: (0, "val"), 139: (1, "val"), 164: (0, "val")}
    summary, out = run(coco, gender=wang, exclude=["person"])
    rows = {int(r["image"][-8:-4]): r for r in read_csv(out)}
    assert {i for i, r in rows.items() if r["split"] == "test"} == {196, 208}
    assert summary["one_valued"] == []  # every label has both values in train and in val
    assert rows[74]["male"] == "0" and rows[73]["male"] == "1"


def test_a_pickle_with_code_is_refused_and_nothing_runs(coco, tmp_path):
    marker = tmp_path / "ran"
    bad = tmp_path / "val.data"
    bad.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    with pytest.raises(DebiaslabError, match=r"val\.data: refused: pickle opcode GLOBAL at byte 0 "
                                             r"\('os\.system', a class or function\)"):
        read_wang_data(bad)
    assert not marker.exists()
    bad.write_bytes(pickle.dumps([{"image_id": 73, "file_name": "x.jpg", "gender": [1, 1]}], protocol=0))
    with pytest.raises(DebiaslabError, match=r"entry 0 \(image_id 73\): gender is \[1, 1\], expected "):
        read_wang_data(bad)


def test_wang_files_read_the_same_in_every_pickle_protocol(tmp_path):
    """The fixtures as Wang et al.'s files are (protocol 0), and rewritten in protocols 1-5."""
    for split in ("train", "val", "test"):
        path = FIXTURES / "wang" / f"{split}.data"
        raw = pickle.loads(path.read_bytes(), encoding="latin1")
        expected = {e["image_id"]: ({(1, 0): 1, (0, 1): 0}[tuple(e["gender"])], e["file_name"])
                    for e in raw}
        got = read_wang_data(path)
        assert {i: (g.value, g.file_name) for i, g in got.items()} == expected
        assert {g.split for g in got.values()} == {split}
        for protocol in range(1, pickle.HIGHEST_PROTOCOL + 1):
            again = tmp_path / str(protocol) / f"{split}.data"
            again.parent.mkdir(exist_ok=True)
            again.write_bytes(pickle.dumps(raw, protocol=protocol))
            assert {i: (g.value, g.split, g.file_name) for i, g in read_wang_data(again).items()} == {
                i: (g.value, g.split, g.file_name) for i, g in got.items()}


def _wang(gender=b"(lp6\nI1\naI0\na", image_id=b"I73\n"):
    """One protocol-0 entry as Wang et al.'s files write it, with gender or image_id replaced."""
    return (b"(lp0\n(dp1\nS'file_name'\np2\nVCOCO_val2014_000000000073.jpg\np3\nsS'image_id'\np4\n"
            + image_id + b"sS'gender'\np5\n" + gender + b"sa.")


def _shared(levels):
    """L_k = [L_(k-1), L_(k-1)]: a few hundred bytes whose repr has 2**levels parts."""
    inner = []
    for _ in range(levels):
        inner = [inner, inner]
    return inner


NESTED = b"(l" * 100_000 + b"a" * 99_999  # a list in a list ... 100,000 deep, protocol 0


@pytest.mark.parametrize(("data", "message"), [
    # a dict key that is a tuple in a tuple ...: hashing it recursed in C and segfaulted at 10**6
    (b"})" + b"\x85" * 1000 + b"K\x01s.", r"refused: pickle opcode EMPTY_TUPLE at byte 1"),
    (b"(d(I1\ntI1\ns.", r"refused: pickle opcode TUPLE at byte 6"),
    # an 8-byte length of 2**62: MemoryError
    (b"\x80\x04\x8e" + struct.pack("<Q", 2**62), r"not a readable pickle \(expected 4611686018427387904 "
                                                  r"bytes in a bytes8, but only 0 remain\)"),
    (b"\x80\x04\x8d" + struct.pack("<Q", 2**62), r"not a readable pickle \(expected 4611686018427387904 "),
    # gender a list of lists: "unhashable type" at the WANG_GENDER lookup
    (_wang(gender=b"(lp6\n(lp7\nI1\naa(lp8\nI0\naa"),
     r"entry 0 \(image_id 73\): gender is a list of 2, expected \[1, 0\] \(man\) or \[0, 1\]"),
    (_wang(gender=b"(lp6\nI1\naI0\naI0\na"), r"entry 0 \(image_id 73\): gender is a list of 3, expected"),
    (_wang(gender=b"(lp6\nI01\naI00\na"), r"gender is a list of 2, expected \[1, 0\]"),  # True, False
    (_wang(gender=b"(lp6\nI1\naI" + b"9" * 4000 + b"\na"), r"gender is \[1, an integer of 13288 bits\]"),
    (_wang(gender=b"S'" + b"m" * 10_000 + b"'\n"), r"gender is 'm{60}'\.\.\. \(10000 characters\), expected"),
    (_wang(image_id=b"(l(l(lI1\naaa"), r"entry 0: image_id is a list of 1, expected an integer"),
    # image_id a list 100,000 deep: RecursionError from repr in the message
    (_wang(image_id=NESTED), r"refused: pickle opcode MARK at byte 8262 \(lists and dicts nested over 8 "
                             r"deep, or over 4096 values on the stack\)"),
    (_wang(image_id=b"(l" * 9 + b"a" * 8), r"refused: pickle opcode APPEND at byte 101 \(lists and dicts "
                                           r"nested over 8 deep"),
    # shared sub-lists: the repr of 40 levels would never finish
    (pickle.dumps([{"image_id": _shared(40), "file_name": "x.jpg", "gender": [1, 0]}], protocol=0),
     r"refused: pickle opcode GET at byte \d+ \(memo index \d+: a list or dict again\)"),
    (pickle.dumps([{"image_id": _shared(3), "file_name": "x.jpg", "gender": [1, 0]}], protocol=2),
     r"refused: pickle opcode BINGET at byte \d+ \(memo index \d+: a list or dict again\)"),
    (b"(lp0\ng0\na.", r"refused: pickle opcode GET at byte 5 \(memo index 0: a list or dict again\)"),
    (b"(lp0\ng1\na.", r"refused: pickle opcode GET at byte 5 \(memo index 1: never stored\)"),
    # a memo index the unpickler would allocate up to
    (b"(lp4000000000\n.", r"refused: pickle opcode PUT at byte 2 \(memo index 4000000000, 0 in use\)"),
    # a persistent id: the unpickler's message had a newline
    (b"(lP1\na.", r"refused: pickle opcode PERSID at byte 2; expected a protocol-0 list of dicts"),
    (b"\x80\x02]I1\nQa.", r"refused: pickle opcode BINPERSID at byte 6"),
    (b"\x80\x02]\x8a\x01\x01a.", r"refused: pickle opcode LONG1 at byte 3"),
    (b"(d(lI1\nas.", r"refused: pickle opcode SETITEM at byte 8 \(a list or dict as a key"),
    (b"(lI1\na", r"not a readable pickle \(pickle exhausted before seeing STOP\)"),
    (b"(lI1\naI2\n.", r"refused: pickle opcode STOP at byte 9 \(expected one list or dict on the stack\)"),
    (b"\xff", r"not a readable pickle \(at position 0, opcode b'\\xff' unknown\)"),
    (b"(dp0\n.", r"holds a dict, expected Wang et al\.'s list"),
])
def test_crafted_wang_pickles_are_one_line_errors(tmp_path, data, message):
    """Files made to crash, hang or print a traceback: refused by the opcode scan, or by the entry
    checks, in one short line naming the file."""
    path = tmp_path / "val.data"
    path.write_bytes(data)
    with pytest.raises(DebiaslabError, match=message) as err:
        read_wang_data(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and "\n" not in text and len(text) < 400


def test_oversized_wang_file_is_refused_before_reading_it_all(tmp_path, monkeypatch):
    monkeypatch.setattr(coco_import, "MAX_WANG_BYTES", 100)
    path = tmp_path / "train.data"
    path.write_bytes(b"(lp0\n" + b"I1\na" * 30 + b".")
    with pytest.raises(DebiaslabError, match=r"train\.data: larger than 100 bytes; Wang et al\.'s "):
        read_wang_data(path)


def test_wang_file_names_must_match_the_instances(coco, tmp_path):
    val = tmp_path / "val.data"  # image 73 under another year's name: the wrong instances file
    val.write_bytes(pickle.dumps([{"file_name": "COCO_val2017_000000000073.jpg", "image_id": 73,
                                   "objects": [0] * 79, "gender": [1, 0]}], protocol=0))
    with pytest.raises(DebiaslabError, match=r"val\.data: entry 0 \(image_id 73\): file_name "
                                             r"'COCO_val2017_000000000073\.jpg', but instances_val2014\.json "
                                             r"names image 73 'COCO_val2014_000000000073\.jpg'"):
        run(coco, gender=[FIXTURES / "wang" / "train.data", val, FIXTURES / "wang" / "test.data"])


def test_sanitised_names():
    assert [sanitise(n) for n in ("teddy bear", "hair drier", "Wine-Glass ", "tv")] == [
        "teddy_bear", "hair_drier", "wine_glass", "tv"]


def test_cli_prints_a_summary_or_one_line(coco):
    cmd = [sys.executable, "-m", "debiaslab.coco_import",
           *sum((["--instances", str(p)] for p in instances(coco)), []),
           "--gender", str(FIXTURES / "gender.csv"), "--images-root", str(coco), "--out", str(coco / "t.csv"),
           "--exclude", "person"]
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "7 labels; images train 9, val 4, test 4" in proc.stdout
    assert "2 of 19 images dropped (no gender)" in proc.stdout
    assert "warning: coco_import: " in proc.stderr  # 4 random val images lack some of the 7 labels
    (coco / "t.csv").unlink()
    proc = subprocess.run([*cmd, "--exclude", "unicorn"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "error: coco_import: --exclude 'unicorn': not a category of instances_train2014.json")
    assert not (coco / "t.csv").exists()


# --------------------------------------------------------------------------- malformed input
def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def drop(key):
    return lambda d: d.pop(key)


def first(key, field, value):
    def change(d):
        d[key][0][field] = value
    return change


def duplicate_image(d):
    d["images"].append(dict(d["images"][1]))


def delete_field(key, field):
    def change(d):
        del d[key][0][field]
    return change


def drop_toothbrush(d):
    d["categories"] = [c for c in d["categories"] if c["id"] != 90]
    d["annotations"] = [a for a in d["annotations"] if a["category_id"] != 90]


@pytest.mark.parametrize(("change", "message"), [
    (drop("annotations"), r"instances_train2014\.json: no 'annotations' key; expected COCO's instances"),
    (drop("images"), r"instances_train2014\.json: no 'images' key"),
    (drop("categories"), r"no 'categories' key"),
    (lambda d: d.update(images={}), r"instances_train2014\.json: images is dict, expected a list"),
    (delete_field("images", "id"), r"images\[0\]: no 'id' key"),
    (delete_field("images", "file_name"), r"images\[0\] \(id 9\): no 'file_name' key"),
    (first("images", "id", "9"), r"images\[0\]: id is '9', expected an integer"),
    (duplicate_image, r"images\[10\]: id 25 appears again \(first at images\[1\]\); expected unique image "),
    (first("annotations", "image_id", 999), r"annotations\[0\] \(id 900101\): image_id 999 is not among"),
    (first("annotations", "category_id", 12),
     r"annotations\[0\] \(id 900101\): category_id 12 is not among the file's categories \(1, 2, 18, "),
    (delete_field("annotations", "category_id"), r"annotations\[0\] \(id 900101\): no 'category_id' key"),
    (first("categories", "id", 2), r"categories\[1\]: id 2 appears again"),
    (drop_toothbrush, r"instances_val2014\.json: categories differ from instances_train2014\.json's "
                      r"\(first difference: id 90, 'toothbrush'\)"),
])
def test_malformed_instances_are_one_line_and_write_nothing(coco, change, message):
    target = "val2014" if "val2014" in message else "train2014"
    edit_json(coco / "annotations" / f"instances_{target}.json", change)
    with pytest.raises(DebiaslabError, match=message) as err:
        run(coco)
    assert "\n" not in str(err.value)
    assert not (coco / "table.csv").exists()


def test_not_json_and_wrong_file_name(coco):
    path = coco / "annotations" / "instances_train2014.json"
    path.write_text('{"images": [')
    with pytest.raises(DebiaslabError, match=r"instances_train2014\.json: not valid JSON \(Expecting value"):
        run(coco)
    renamed = coco / "annotations" / "train.json"
    shutil.copy(FIXTURES / "instances_train2014.json", renamed)
    with pytest.raises(DebiaslabError, match=r"train\.json: expected COCO's file name instances_<set>\.json"):
        build_table([renamed], [FIXTURES / "gender.csv"], coco, coco / "table.csv")


@pytest.mark.parametrize(("lines", "message"), [
    ("image_id,gender\n9,man\n", r"gender\.csv line 2: gender is 'man', expected male or female"),
    ("image_id,gender\n9,male\n9,female\n",
     r"gender\.csv line 3: image_id 9 appears again \(first at .*gender\.csv line 2\)"),
    ("image_id,gender\n12345,male\n", r"line 2: image_id 12345 is in none of the instances files"),
    ("image_id,gender\nCOCO_9,male\n", r"line 2: image_id is 'COCO_9', expected a COCO image id"),
    ("id,gender\n9,male\n", r"gender\.csv line 1: no 'image_id' column"),
    ("image_id,gender,split\n9,male,dev\n", r"line 2: split is 'dev', expected one of train, val, test"),
    ("image_id,gender\n9,male,x\n", r"line 2: 3 fields, expected 2"),
    ("image_id,gender,split\n9,male,train\n25,female,train\n",  # a split, but no val/test images
     r"no val images with a gender; every split needs some"),
])
def test_malformed_gender_files(coco, tmp_path, lines, message):
    gender = tmp_path / "gender.csv"
    gender.write_text(lines)
    with pytest.raises(DebiaslabError, match=message):
        run(coco, gender=[gender])
    assert not (coco / "table.csv").exists()


def test_missing_image_file_and_images_outside_the_tables_folder(coco, tmp_path):
    (coco / "val2014" / "COCO_val2014_000000000136.jpg").unlink()
    with pytest.raises(DebiaslabError, match=r"instances_val2014\.json: image 136: image file "
                                             r".*val2014/COCO_val2014_000000000136\.jpg not found"):
        run(coco)
    with pytest.raises(DebiaslabError, match=r"--images-root .* is not inside .*, the table's folder"):
        run(coco, out=tmp_path / "elsewhere" / "table.csv")
    assert not (coco / "table.csv").exists()


def test_other_combinations_that_cannot_work(coco, tmp_path):
    only_train = [coco / "annotations" / "instances_train2014.json"]
    gender = tmp_path / "train_gender.csv"
    gender.write_text("image_id,gender\n9,male\n25,female\n")
    with pytest.raises(DebiaslabError, match=r"--gender gives no split, so two --instances files"):
        build_table(only_train, [gender], coco, coco / "table.csv")
    with pytest.raises(DebiaslabError, match=r"some files give a split and others do not"):
        run(coco, gender=[gender, FIXTURES / "wang" / "val.data"])
    shutil.copy(instances(coco)[0], coco / "annotations" / "instances_again2014.json")
    with pytest.raises(DebiaslabError, match=r"image id 9 is also in instances_train2014\.json"):
        build_table([only_train[0], coco / "annotations" / "instances_again2014.json"],
                    [gender], coco, coco / "table.csv")
    with pytest.raises(DebiaslabError, match=r"category 1 \('person'\) becomes column 'person', which "
                                             r"is a reserved column name"):
        run(coco, protected="person")
