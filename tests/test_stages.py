"""Stages as a user runs them: bad input gives one line on stderr, exit code 2, no traceback."""

import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import REPO

from debiaslab import stage_args
from debiaslab.celeba import read_celeba
from debiaslab.errors import DebiaslabError
from debiaslab.params import TrainParams
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


@pytest.mark.parametrize(("script", "args", "message"), [
    ("pack_digits.py", ["abc"], "error: pack_digits: severity 'abc': expected a number "
                                "(one of colored_digits.severities: 0.5, 1.0, 2.0, 5.0)"),
    ("pack_digits.py", ["3"], "severity '3': expected one of colored_digits.severities: 0.5, 1.0"),
    ("evaluate.py", ["baseline"],
     "error: evaluate: expected 2 arguments (METHOD TARGET), got 1 ('baseline')"),
    ("evaluate.py", ["../../x", "Smiling"], "error: evaluate: method '../../x': expected a plain name"),
    ("train_fair.py", ["fairbatch", "Smilng"],
     "error: train_fair: target 'Smilng': expected one of attributes.targets: Smiling"),
    ("train_debias.py", ["lf", "1.0", "data/digits/1.0", "debias_train", "accuracy"],
     "error: train_debias: method 'lf': expected one of adversarial, disent, drfairness, erm, "),
    ("train_debias.py", ["erm", "1.0", "data/digits/1.0", "debias_train", "accuracy", "bias_ensemble"],
     "error: train_debias: erm does not use BiasEnsemble's selection (methods.bias_ensemble lists"),
    ("train_debias.py", ["lff", "1.0", "data/digits/1.0", "debias_train", "accuracy", "be"],
     "error: train_debias: last argument 'be': expected one of bias_ensemble"),
    ("train_fair.py", ["lff", "Smiling"],
     "error: train_fair: method 'lff': expected one of methods.fair: fairbatch, fairbatch_step, drfairness"),
    ("bias_ensemble.py", ["1.0", "data/digits/1.0", "debias_train", "train"],
     "error: bias_ensemble: ensemble group 'train': expected one of bias_ensemble, faces_bias_ensemble"),
    ("train_baseline.py", ["Smilng"],
     "error: train_baseline: attribute 'Smilng': unknown attribute (valid: "),
])
def test_bad_stage_argument_is_one_line(tmp_path, script, args, message):
    assert_one_line_error(run_stage(tmp_path, script, *args), message)


def test_bad_float_and_hparams_group_are_one_line(tmp_path):
    proc = run_stage(tmp_path, "train_baseline.py", "Smiling", params={"train": {"lr": float("nan")}})
    assert_one_line_error(proc, "params.yaml: train.lr: expected a finite number, got nan")
    proc = run_stage(tmp_path, "train_multilabel.py", "erm", params={"hparams": {"lfff": {"q": 0.5}}})
    assert_one_line_error(proc, "params.yaml: hparams.lfff: unknown method (expected one of: adversarial, ")


def test_stage_argument_helpers():
    assert stage_args.arguments(["a", "b"], "METHOD TARGET") == ["a", "b"]
    with pytest.raises(DebiaslabError, match=r"^expected 1 argument \(TARGET\), got none$"):
        stage_args.arguments([], "TARGET")
    assert stage_args.severity("1.0", [0.5, 1.0]) == "1.0"  # as written: it names the output folder
    for bad in ("nan", "inf", "2"):
        with pytest.raises(DebiaslabError, match=f"severity '{bad}': expected one of colored_digits"):
            stage_args.severity(bad, [0.5, 1.0])
    assert stage_args.group("train group", "faces_debias_train", TrainParams) == "faces_debias_train"
    for bad in ("..", "../x", "a/b", "", "-x"):
        with pytest.raises(DebiaslabError, match="expected a plain name"):
            stage_args.plain_name("name", bad)


def test_full_skew_trains_where_target_equals_protected_and_scores_both(workdir):
    """The GAN paper's fully skewed ablation on the 60-face set: its test AP against each."""
    proc = run_stage(workdir, "full_skew.py", "Smiling")
    assert proc.returncode == 0, proc.stderr
    report = yaml.safe_load((workdir / "metrics/full_skew/Smiling.json").read_text())
    assert report["target"] == "Smiling" and report["protected"] == "Eyeglasses" and not report["opposite"]
    assert 0 < report["train_images"] < 48  # a part of the 48 training faces
    assert set(report["test_AP"]) == {"Smiling", "Eyeglasses"}
    assert all(0 <= v <= 1 for v in report["test_AP"].values())
    assert (workdir / "models/full_skew/Smiling/model.pt").is_file()
    proc = run_stage(workdir, "full_skew.py", "Young")
    assert_one_line_error(proc, "target 'Young'")


def test_a_multilabel_model_on_an_alpha_balanced_subset(workdir):
    proc = run_stage(workdir, "train_multilabel.py", "erm", "2.0",
                     params={"balanced_subsets": {"alphas": [2.0]}})
    assert proc.returncode == 0, proc.stderr
    assert "training images" in proc.stdout and "(alpha 2.0)" in proc.stdout
    assert (workdir / "models/multilabel_balanced/alpha_2.0/erm/model.pt").is_file()
    for bad, message in (("5.0", "alpha '5.0': expected one of balanced_subsets.alphas: 2.0"),
                         ("../x", "alpha '../x': expected a number"),
                         ("nan", "alpha 'nan': expected one of balanced_subsets.alphas")):
        proc = run_stage(workdir, "train_multilabel.py", "erm", bad,
                         params={"balanced_subsets": {"alphas": [2.0]}})
        assert_one_line_error(proc, message)
