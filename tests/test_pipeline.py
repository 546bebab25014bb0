"""End to end: `dvc repro` of the real dvc.yaml on the tiny profile, in a temporary git repo."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from debiaslab.profile import apply_profile

pytestmark = pytest.mark.slow


def sh(cwd, *cmd):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
           "DVC_NO_ANALYTICS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    for name in ("dvc.yaml", "params.yaml", ".gitignore", "profiles", "stages", "src"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    apply_profile(root / "profiles" / "tiny.yaml", root / "params.yaml")
    sh(root, "git", "init", "-q")
    sh(root, "dvc", "init", "-q")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "tiny")
    sh(root, "dvc", "repro")
    return root


def test_repro_produces_every_metric(repo):
    report = json.loads((repo / "metrics/evaluate/baseline/Smiling.json").read_text())
    assert {"AP", "accuracy", "Eyeglasses"} <= set(report["test"])
    assert {"DEO", "BA", "KL", "weighted_AP"} <= set(report["test"]["Eyeglasses"])
    for attr in ("Smiling", "Eyeglasses"):
        assert (repo / f"models/baseline/{attr}/model.pt").is_file()
        assert (repo / f"metrics/train/baseline/{attr}/plots/metrics/val/score.tsv").is_file()
    assert json.loads((repo / "metrics/synthesize.json").read_text())["n_images"] == 600


def test_leakage_stage_reports_every_model(repo):
    report = json.loads((repo / "metrics/leakage.json").read_text())
    assert report["protected"] == "Eyeglasses"
    assert set(report["models"]) == {"erm", "adversarial"}
    for m in report["models"].values():
        assert 0.5 <= m["model_leakage"]["mean"] <= 1.0
        assert m["amplification"] == pytest.approx(m["model_leakage"]["mean"] - m["natural_leakage_at_F1"])
    assert (repo / "reports/leakage/natural_leakage.png").is_file()


def test_bias_ensemble_stages_report_every_method(repo):
    for method in ("erm", "lff", "lff_be", "disent", "disent_be"):
        for bias_set in ("1.0", "faces"):
            test = json.loads((repo / f"metrics/debias/{bias_set}/{method}.json").read_text())["test"]
            assert {"accuracy", "aligned_accuracy", "conflicting_accuracy"} <= set(test)
    selection = json.loads((repo / "metrics/bias_ensemble/1.0.json").read_text())
    assert 0 <= selection["selected_fraction"] <= 1
    assert (repo / "data/colored_digits/1pct/align").is_dir()


def test_gan_chain_produces_pairs_diagnostics_and_augmented_models(repo):
    latent = json.loads((repo / "metrics/latent/Smiling.json").read_text())
    assert latent["variant"] == "standard" and latent["n_edited"] == 400
    assert set(latent["svm_heldout_accuracy"]) == {"Smiling", "Eyeglasses"}
    pairs = json.loads((repo / "metrics/pairs/Smiling.json").read_text())
    assert set(pairs) == {"n_pairs", "baseline", "oracle"}  # both judges
    assert {"target_kept", "Eyeglasses_flipped"} <= set(pairs["oracle"]["flip"])
    hallucinated = json.loads((repo / "metrics/hallucinate.json").read_text())
    assert 0 <= hallucinated["Smiling"]["oracle_agreement"] <= 1
    assert sum(hallucinated["cells_Smiling_Eyeglasses"].values()) == 1000
    for method in ("augmented", "augmented_inversion"):
        report = json.loads((repo / f"metrics/evaluate/{method}/Smiling.json").read_text())
        assert "DEO" in report["test"]["Eyeglasses"]
        counts = json.loads((repo / f"metrics/augment/{method}/Smiling.json").read_text())
        assert counts["n_synthetic"] == (800 if method == "augmented" else 80)
    for plot in ("pairs/Smiling.png", "compare/Smiling_ap_vs_deo.png", "gan/samples/final.png",
                 "gan/inversion.png"):
        assert (repo / "reports" / plot).is_file(), plot


def test_summary_prints_all_sections(repo):
    out = sh(repo, sys.executable, "-m", "debiaslab.summary")
    for section in ("Fairness on test", "Leakage of Eyeglasses", "Bias-conflicting benchmarks"):
        assert section in out


def test_second_repro_is_a_no_op(repo):
    out = sh(repo, "dvc", "repro")
    assert "Running stage" not in out and "up to date" in out


def test_metrics_show_lists_fairness_metrics(repo):
    out = sh(repo, "dvc", "metrics", "show", "--json")
    assert "DEO" in out and "best_val_score" in out


def test_stages_import_the_code_of_their_own_checkout(repo):
    """A queued `dvc exp run` executes in a copy of the repo: its stages must import that copy's
    src/, not the editable install's (which points at the developer's working tree)."""
    import yaml

    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        cmd = stage.get("do", stage)["cmd"]
        assert cmd.startswith("PYTHONPATH=src python "), name
    out = sh(repo, "sh", "-c", "PYTHONPATH=src python -c 'import debiaslab; print(debiaslab.__file__)'")
    assert Path(out.strip()).resolve().is_relative_to(repo.resolve())
