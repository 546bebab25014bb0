"""Stages as a user runs them: bad input gives one line on stderr, exit code 2, no traceback."""

import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import REPO

from debiaslab.celeba import read_celeba
from debiaslab.prepare import prepare


@pytest.fixture(scope="module")
def workdir(synthfaces_dir, tmp_path_factory):
    """A folder laid out like the repo: params.yaml (tiny) and data/prepared."""
    root = tmp_path_factory.mktemp("stages")
    prepare(read_celeba(synthfaces_dir), root / "data" / "prepared", image_size=16, workers=1,
            progress=False)
    return root


def run_stage(workdir, script, *args, params=None):
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    base["train"].update({"epochs": 1, "width": 8})
    for group, values in (params or {}).items():
        base.setdefault(group, {}).update(values)
    (workdir / "params.yaml").write_text(yaml.safe_dump(base))
    return subprocess.run([sys.executable, str(REPO / "stages" / script), *args], cwd=workdir,
                          capture_output=True, text=True, timeout=120)


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    for fragment in fragments:
        assert fragment in last, last


def test_bad_param_type(workdir):
    proc = run_stage(workdir, "train_baseline.py", "Smiling", params={"train": {"epochs": "many"}})
    assert_one_line_error(proc, "params.yaml: train.epochs: expected an integer, got 'many'")


def test_unknown_attribute_lists_valid_names(workdir):
    proc = run_stage(workdir, "train_baseline.py", "Male")
    assert_one_line_error(proc, "no attribute 'Male'", "valid: Bangs, Blond_Hair")


def test_missing_checkpoint(workdir):
    proc = run_stage(workdir, "evaluate.py", "baseline", "Smiling")
    assert_one_line_error(proc, "models/baseline/Smiling/model.pt: checkpoint not found")


def test_missing_data_root(workdir):
    proc = run_stage(workdir, "prepare.py", params={"data": {"root": "no/such/folder"}})
    assert_one_line_error(proc, "no/such/folder: data folder not found")


def test_train_then_evaluate_writes_metrics(workdir):
    assert run_stage(workdir, "train_baseline.py", "Smiling").returncode == 0
    proc = run_stage(workdir, "evaluate.py", "baseline", "Smiling", params={"evaluate": {"n_boot": 20}})
    assert proc.returncode == 0, proc.stderr
    report = yaml.safe_load((workdir / "metrics/evaluate/baseline/Smiling.json").read_text())
    eg = report["test"]["Eyeglasses"]
    assert set(eg) >= {"weighted_AP", "DEO", "BA", "KL", "EO_diff", "DP_diff", "acc_y1_g0"}
    assert eg["DEO"]["lo"] <= eg["DEO"]["median"] <= eg["DEO"]["hi"]
    assert (workdir / "reports/evaluate/baseline/Smiling_scores.png").stat().st_size > 1000
    shutil.rmtree(workdir / "metrics")
