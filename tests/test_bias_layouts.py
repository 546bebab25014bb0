"""Downloaded BiasEnsemble releases (cmnist, bffhq, bar, dogs_cats) through the stages the default
run uses, on fixtures in each release's layout (tests/make_bias_layouts.py), and malformed ones."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from make_bias_layouts import HERE, LAYOUT_FILES, write_layouts
from PIL import Image
from test_stages import assert_one_line_error

from debiaslab.bias_folder import LAYOUTS, pack_bias_folder, read_bias_folder
from debiaslab.errors import DebiaslabError
from debiaslab.params import BIAS_PRESETS, load_params

FOLDER = {"cmnist": "cmnist", "bffhq": "bffhq", "bar": "bar", "dogs_cats": "dogs_and_cats"}
# dataset -> (severity, train / valid / test images, classes, image side packed by the stage)
EXPECTED = {"cmnist": (1.0, (9, 3, 6), 3, 4), "bffhq": (0.5, (6, 4, 4), 2, 16),
            "bar": (5.0, (9, 3, 6), 3, 16), "dogs_cats": (5.0, (6, 2, 4), 2, 16)}


def test_fixtures_are_what_the_generator_writes(tmp_path):
    write_layouts(tmp_path)
    for folder, files in LAYOUT_FILES.items():
        committed = sorted(p.relative_to(HERE / folder).as_posix()
                           for p in (HERE / folder).rglob("*") if p.is_file())
        assert committed == sorted(files), folder
        for rel in files:  # same pixels (JPEG: same encoder, same bytes)
            assert (HERE / folder / rel).read_bytes() == (tmp_path / folder / rel).read_bytes(), rel


def params_file(workdir: Path, **groups: dict) -> None:
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    for group, values in groups.items():
        base.setdefault(group, {}).update(values)
    (workdir / "params.yaml").write_text(yaml.safe_dump(base))


def stage(workdir: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "stages" / script), *args], cwd=workdir,
                          capture_output=True, text=True, timeout=300)


def bench(tmp_path: Path, release: str, **bias_data) -> tuple[Path, str]:
    """A work folder whose params.yaml reads the fixture of ``release``; returns it and the severity."""
    dataset, severity = release, EXPECTED[release][0]
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    params_file(workdir, bias_data={"dataset": dataset, "root": str(HERE / FOLDER[dataset]),
                                    "image_size": 16 if dataset != "cmnist" else None, **bias_data},
                colored_digits={"severities": [severity]},
                debias_train={"epochs": 1, "width": 8, "batch_size": 8},
                bias_ensemble={"n_models": 3, "epochs": 1, "min_votes": 2})
    return workdir, f"{severity:g}" if severity != 0.5 else "0.5"


@pytest.mark.parametrize("dataset", list(EXPECTED))
def test_pack_digits_reads_each_release(tmp_path, dataset):
    workdir, sev = bench(tmp_path, dataset)
    proc = stage(workdir, "pack_digits.py", sev)
    assert proc.returncode == 0, proc.stderr
    assert "paper preset" in proc.stdout
    out = workdir / "data" / "digits" / sev
    meta = json.loads((out / "meta.json").read_text())
    _, sizes, k, side = EXPECTED[dataset]
    assert meta["dataset"] == dataset and meta["classes"] == list(range(k))
    assert [meta["counts"][s]["images"] for s in ("train", "valid", "test")] == list(sizes)
    for split in ("train", "valid", "test"):
        images = np.load(out / f"{split}.npy")
        labels = pd.read_csv(out / f"{split}_labels.csv")
        assert images.shape == (len(labels), side, side, 3) and images.dtype == np.uint8
        for rel, target in zip(labels["image"], labels["target"], strict=True):
            assert Path(rel).name.split("_")[-2] == str(target)  # paths relative to the root
            assert (HERE / FOLDER[dataset] / rel).is_file()
    train = pd.read_csv(out / "train_labels.csv")
    conflict = train["image"].str.contains("conflict")
    assert (train["aligned"] == (~conflict).astype(int)).all()  # align/ and conflict/ as written
    if dataset == "bar":  # the original's bias labels for BAR's training set: from the folder
        assert (train.loc[conflict, "bias"] == (train.loc[conflict, "target"] + 1) % 3).all()
        assert train["image"].str.contains("conflict/5pct/").sum() == 3
        assert not train["image"].str.contains("conflict/1pct/").any()


def test_the_same_stages_train_on_a_release(tmp_path):
    """BFFHQ through pack_digits -> bias_ensemble -> train_debias, with the paper's preset."""
    workdir, sev = bench(tmp_path, "bffhq")
    assert stage(workdir, "pack_digits.py", sev).returncode == 0
    data = f"data/digits/{sev}"
    proc = stage(workdir, "bias_ensemble.py", sev, data, "debias_train", "bias_ensemble")
    assert proc.returncode == 0, proc.stderr
    proc = stage(workdir, "train_debias.py", "disent", sev, data, "debias_train", "accuracy", "bias_ensemble")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((workdir / f"metrics/debias/{sev}/disent_be.json").read_text())
    assert set(report["test"]) >= {"accuracy", "aligned_accuracy", "conflicting_accuracy"}
    import torch
    ckpt = torch.load(workdir / f"models/debias/{sev}/disent_be/model.pt", weights_only=True)
    text = repr(ckpt.get("train")) + repr(ckpt.get("hparams", ckpt.get("meta")))
    assert "resnet18" in text  # the preset's architecture, not debias_train's mlp
    # the saved checkpoint, evaluated again as BiasEnsemble's test.py does, gives the stage's numbers
    model = f"models/debias/{sev}/disent_be/model.pt"
    proc = evaluate_checkpoint(workdir, model, data, "--json")
    assert proc.returncode == 0, proc.stderr
    again = json.loads(proc.stdout)
    assert {k: again[k] for k in report["test"]} == report["test"]
    assert again["n_aligned"] + again["n_conflicting"] == again["n"]
    proc = evaluate_checkpoint(workdir, model, data, "--split", "valid")
    assert proc.returncode == 0 and f"{model} on {data} valid (" in proc.stdout
    assert_one_line_error(evaluate_checkpoint(workdir, model, "data/nowhere"),
                          "error: evaluate_checkpoint: data/nowhere: no packed 'test' split here")
    assert_one_line_error(evaluate_checkpoint(workdir, f"{data}/test_labels.csv", data),
                          f"error: evaluate_checkpoint: {data}/test_labels.csv")


def evaluate_checkpoint(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "debiaslab.evaluate_checkpoint", *args], cwd=workdir,
                          capture_output=True, text=True, timeout=300)


def test_presets_replace_debias_train_and_hparams(tmp_path):
    path = tmp_path / "params.yaml"
    params_file(tmp_path, bias_data={"dataset": "bffhq", "root": str(HERE / "bffhq")})
    p = load_params("debias_train", "hparams", path=path)
    assert (p["debias_train"].arch, p["debias_train"].lr, p["debias_train"].batch_size) == \
        ("resnet18", 1e-4, 64)
    assert (p["debias_train"].lr_decay_step, p["debias_train"].lr_gamma, p["debias_train"].steps) == \
        (10_000, 0.1, 0)  # the paper's decay; the length of training stays the user's
    disent = p["hparams"]["disent"]
    assert (disent["lambda_dis_align"], disent["lambda_swap_align"], disent["lambda_swap"]) == (2, 2, 0.1)
    faces = load_params("faces_debias_train", "hparams", path=path)  # other bias sets: untouched
    assert faces["hparams"]["disent"]["lambda_swap"] == 1.0
    assert faces["faces_debias_train"].arch == "small_cnn"
    params_file(tmp_path, bias_data={"dataset": "bffhq", "root": str(HERE / "bffhq"), "preset": "none"})
    assert load_params("debias_train", path=path)["debias_train"].arch == "mlp"
    params_file(tmp_path, bias_data={"dataset": "colored_digits"})  # the default: no preset
    assert load_params("debias_train", "hparams", path=path)["hparams"]["disent"]["lambda_swap"] == 1.0
    assert set(BIAS_PRESETS) == set(LAYOUTS) - {"colored_digits"}


@pytest.mark.parametrize(("values", "message"), [
    ({"dataset": "cifar10c"}, "bias_data.dataset: expected one of 'colored_digits', 'cmnist'"),
    ({"dataset": "bar"}, "bias_data.root: dataset bar reads a downloaded release; set root"),
    ({"image_size": 4}, "bias_data.image_size: expected an integer in 8..512, got 4"),
    ({"preset": "fast"}, "bias_data.preset: expected one of 'paper', 'none'"),
    ({"root": ""}, "bias_data.root: expected a folder path"),
])
def test_bad_bias_data_params(tmp_path, values, message):
    params_file(tmp_path, bias_data=values)
    with pytest.raises(DebiaslabError, match=r"params\.yaml: bias_data\.") as err:
        load_params("bias_data", path=tmp_path / "params.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)


# --------------------------------------------------------------------------- malformed releases
@pytest.fixture
def copy(tmp_path):
    def make(dataset: str) -> Path:
        root = tmp_path / FOLDER[dataset]
        shutil.copytree(HERE / FOLDER[dataset], root)
        return root
    return make


def image(path: Path, size: int = 4) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(path)


def fails(root: Path, dataset: str, sev: str, *fragments: str, pack: bool = False) -> None:
    with pytest.raises(DebiaslabError) as err:
        if pack:
            pack_bias_folder(root, sev, root.parent / "packed", layout=dataset, progress=False)
        else:
            read_bias_folder(root, sev, dataset)
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_cmnist_valid_at_the_root_is_not_cmnist(copy):
    root = copy("cmnist")
    for sev in ("0.5pct", "1pct"):
        shutil.rmtree(root / sev / "valid")
    fails(root, "cmnist", "1pct", f"{root}: not a Colored MNIST (cmnist) folder",
          "<severity>/valid/ (flat)", "(no 1pct/valid/ for the valid split)")


def test_bffhq_read_as_cmnist_names_the_layout_it_looks_like(copy):
    root = copy("bffhq")
    fails(root, "cmnist", "0.5pct", "no 0.5pct/valid/", "it looks like bffhq (set bias_data.dataset)")


def test_the_parent_of_a_release(copy):
    root = copy("bar").parent
    fails(root, "bar", "1pct", "no train/align/", "it holds bar/: point bias_data.root at one of them")


def test_bar_with_a_severity_folder_for_align(copy):
    root = copy("bar")
    shutil.move(root / "train" / "align", root / "train" / "5pct")
    fails(root, "bar", "5pct", "not a BAR (bar) folder", "train/align/<class>/",
          "train/conflict/<severity>/<class>/")


def test_missing_severity_lists_those_found(copy):
    root = copy("dogs_cats")
    fails(root, "dogs_cats", "2pct", f"{root / '2pct'}: severity folder not found (found: 1pct, 5pct")
    fails(copy("bar"), "bar", "0.5pct", "conflict/0.5pct: severity folder not found (found: 1pct, 5pct")


def test_missing_split(copy):
    root = copy("bffhq")
    shutil.rmtree(root / "test")
    fails(root, "bffhq", "0.5pct", "not a BFFHQ (bffhq) folder", "no test/ for the test split")


def test_empty_split(copy):
    root = copy("cmnist")
    shutil.rmtree(root / "test")
    (root / "test").mkdir()
    fails(root, "cmnist", "1pct", "no images for the test split")


def test_wrong_nesting(copy):
    root = copy("bffhq")  # BFFHQ's valid/ is flat: a class folder there is not its layout
    image(root / "valid" / "0" / "00099_0_0.png")
    fails(root, "bffhq", "0.5pct", f"{root / 'valid' / '0'}: unexpected folder (expected the files directly")
    root = copy("cmnist")  # CMNIST's test/ holds class folders
    image(root / "test" / "00099_0_0.png")
    fails(root, "cmnist", "1pct", "00099_0_0.png: file outside a class folder")
    root = copy("bar")
    image(root / "train" / "align" / "0" / "extra" / "00099_0_0.jpg")
    fails(root, "bar", "1pct", "unexpected folder inside class folder")


def test_class_disagrees_with_its_folder(copy):
    root = copy("dogs_cats")
    image(root / "test" / "1" / "00099_0_0.png")
    fails(root, "dogs_cats", "1pct",
          "00099_0_0.png: target 0 in the file name disagrees with its class folder 1/")


def test_aligned_and_conflicting_names_are_checked_except_on_bar(copy):
    root = copy("cmnist")
    image(root / "1pct" / "conflict" / "2" / "00099_2_2.png")
    fails(root, "cmnist", "1pct", "under conflict/ but target == bias == 2")
    assert len(read_bias_folder(copy("bar"), "1pct", "bar")["train"].paths) == 9  # names say 0_0 there


def test_non_image_files(copy):
    root = copy("bffhq")
    (root / "valid" / "README.txt").write_text("not an image")
    fails(root, "bffhq", "0.5pct", "README.txt: file name does not match <name>_<target>_<bias>.png|jpg|jpeg")
    root = copy("cmnist")
    (root / "test" / "0" / "00099_0_0.png").write_text("not a PNG")
    fails(root, "cmnist", "1pct", "00099_0_0.png: cannot decode image", pack=True)


def test_symlink_escaping_the_root(copy, tmp_path):
    outside = tmp_path / "outside" / "00099_0_0.png"
    image(outside)
    root = copy("dogs_cats")
    os.symlink(outside, root / "test" / "0" / "00099_0_0.png")
    fails(root, "dogs_cats", "1pct", "outside the dataset root")
    root = copy("bar")
    shutil.rmtree(root / "valid")
    os.symlink(outside.parent, root / "valid")
    fails(root, "bar", "1pct", "outside the dataset root")


def test_label_out_of_range(copy):
    root = copy("bar")
    image(root / "test" / "2" / "00099_2_7.jpg")
    fails(root, "bar", "1pct", "bias label 7 is out of range: the training split has 3 classes")


def test_root_not_a_folder(tmp_path):
    (tmp_path / "bffhq.zip").write_bytes(b"PK")
    fails(tmp_path / "bffhq.zip", "bffhq", "0.5pct", "dataset root is not a folder (expected a BFFHQ")
    fails(tmp_path / "absent", "bffhq", "0.5pct", "absent: dataset root folder not found")


def test_the_stage_prints_one_line(tmp_path):
    workdir, sev = bench(tmp_path, "cmnist", root=str(tmp_path / "nowhere"))
    assert_one_line_error(stage(workdir, "pack_digits.py", sev),
                          "error: pack_digits:", "nowhere: dataset root folder not found")
    workdir, sev = bench(tmp_path, "bffhq", dataset="cmnist")  # BFFHQ read as CMNIST
    assert_one_line_error(stage(workdir, "pack_digits.py", sev), "not a Colored MNIST (cmnist) folder",
                          "it looks like bffhq")
    assert not (workdir / "data" / "digits" / sev).exists()
