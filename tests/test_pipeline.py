"""End to end: `dvc repro` of the real dvc.yaml on the tiny profile, in a temporary git repo."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import env, sh, tiny_repo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    """Two clones of the tiny pipeline, reproduced side by side (2 processes on 2 cores)."""
    roots = [tiny_repo(tmp_path_factory.mktemp(f"pipeline{i}")) for i in (0, 1)]
    procs = [subprocess.Popen(["dvc", "repro"], cwd=root, env=env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for root in roots]
    for proc in procs:
        out, _ = proc.communicate(timeout=1800)
        assert proc.returncode == 0, out[-3000:]
    return roots


@pytest.fixture(scope="module")
def repo(repos):
    return repos[0]


def locked_outs(root: Path) -> dict:
    """{out path: md5} of every output in dvc.lock (DVCLive's curves too: they log no timestamps)."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return {o["path"]: o.get("md5") for stage in lock.values() for o in stage.get("outs", [])}


def test_two_runs_give_identical_metrics_and_outputs(repos):
    a, b = repos
    files = sorted(p.relative_to(a) for p in (a / "metrics").rglob("*.json"))
    assert len(files) > 40
    differ = [str(f) for f in files if (a / f).read_bytes() != (b / f).read_bytes()]
    assert not differ, differ  # byte for byte: no metrics file may hold a wall-clock time
    outs_a, outs_b = locked_outs(a), locked_outs(b)
    assert outs_a.keys() == outs_b.keys() and len(outs_a) > 60
    assert [p for p in outs_a if outs_a[p] != outs_b[p]] == []  # models, data, plots: bit for bit


def test_repro_produces_every_metric(repo):
    report = json.loads((repo / "metrics/evaluate/baseline/Smiling.json").read_text())
    assert {"AP", "accuracy", "Eyeglasses"} <= set(report["test"])
    assert {"DEO", "BA", "KL", "weighted_AP"} <= set(report["test"]["Eyeglasses"])
    assert report["balanced"].keys() == report["test"].keys() and report["n_balanced"] == 200
    for attr in ("Smiling", "Eyeglasses"):
        assert (repo / f"models/baseline/{attr}/model.pt").is_file()
        assert (repo / f"metrics/train/baseline/{attr}/plots/metrics/val/score.tsv").is_file()
    assert json.loads((repo / "metrics/synthesize.json").read_text())["n_images"] == 600


def test_report_gathers_every_section(repo):
    summary = (repo / "reports/summary.md").read_text()
    for section in ("Fairness of the target classifiers", "GAN", "Leakage", "Colored Digits"):
        assert section in summary, section
    html = (repo / "reports/index.html").read_text()
    assert html.count("data:image/png;base64,") >= 10


def test_leakage_stage_reports_every_model(repo):
    report = json.loads((repo / "metrics/leakage.json").read_text())
    assert report["protected"] == "Eyeglasses"
    assert set(report["models"]) == {"erm", "adversarial", "image_adversarial"}
    for m in report["models"].values():
        assert 0.5 <= m["model_leakage"]["mean"] <= 1.0
        assert m["amplification"] == pytest.approx(m["model_leakage"]["mean"] - m["natural_leakage_at_F1"])
    assert (repo / "reports/leakage/natural_leakage.png").is_file()
    assert (repo / "reports/leakage/masks.png").is_file()


def test_balanced_subsets_retrain_every_leakage_model(repo):
    """Wang et al.'s α-balanced sets: each α's models, trained on fewer, balanced images."""
    balanced = json.loads((repo / "metrics/leakage_balanced.json").read_text())["alphas"]
    assert list(balanced) == ["2.0"]  # the tiny profile's alphas, as DVC names the folders
    for name, m in balanced["2.0"]["models"].items():
        assert 0 < m["train_images"] < 480, name  # a subset of the 480 training images
        assert 0.5 <= m["model_leakage"]["mean"] <= 1.0
    assert set(balanced["2.0"]["models"]) == {"erm", "adversarial", "image_adversarial"}
    assert (repo / "reports/leakage/balanced_subsets.png").is_file()


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
    assert set(pairs) == {"generator", "n_pairs", "baseline", "oracle"}  # both judges
    assert pairs["generator"] == "train"
    assert {"target_kept", "Eyeglasses_flipped"} <= set(pairs["oracle"]["flip"])
    gan = json.loads((repo / "metrics/train/gan/metrics.json").read_text())
    assert 0 <= gan["fidelity"]["Smiling_rate"] <= 1 and "Smiling_eq_Eyeglasses_gap" in gan["fidelity"]
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


def test_every_stage_is_in_the_run_cache(repo):
    """DVC skips the run-cache for a stage with an uncached plain output: DVCLive's curves are
    declared as plots, so a queued seed or a reverted param restores a trained stage (train_gan,
    the oracle, the baselines) instead of training it again."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        stages = list(dvc_repo.index.stages)
        missing = [s.name for s in stages if dvc_repo.stage_cache._load(s) is None]
    assert len(stages) > 40 and missing == []


def test_second_repro_is_a_no_op(repo):
    out = sh(repo, "dvc", "repro")
    assert "Running stage" not in out and "up to date" in out


def stages_to_rerun(repo) -> set[str]:
    """The stages `dvc status` reports as changed."""
    return set(json.loads(sh(repo, "dvc", "status", "--json").strip() or "{}"))


def test_an_edit_reruns_only_the_stages_of_the_method_it_touches(repo):
    """Editing one method's module, or its hparams entry, leaves exactly that method's stages to
    rerun (and check_params, the guard every params edit reruns), no baseline, GAN or other method."""
    module, params = repo / "src/debiaslab/methods/lff.py", repo / "params.yaml"
    code, settings = module.read_text(), params.read_text()
    lff_stages = {"train_debias@lff-1.0", "train_debias_be@lff-1.0", "train_debias_faces@lff",
                  "train_debias_faces_be@lff"}
    try:
        module.write_text(code + "\n# an edit\n")
        assert stages_to_rerun(repo) == lff_stages
        module.write_text(code)
        edited = yaml.safe_load(settings)
        edited["hparams"]["fairbatch"]["alpha"] = 0.01
        params.write_text(yaml.safe_dump(edited, sort_keys=False))
        assert stages_to_rerun(repo) == {"check_params", "train_fair@fairbatch-Smiling"}
        edited["hparams"]["disent"]["lambda_swap"] = 2.0
        params.write_text(yaml.safe_dump(edited, sort_keys=False))
        assert stages_to_rerun(repo) == {"check_params", "train_fair@fairbatch-Smiling",
                                         "train_debias@disent-1.0", "train_debias_be@disent-1.0",
                                         "train_debias_faces@disent", "train_debias_faces_be@disent"}
    finally:
        module.write_text(code)
        params.write_text(settings)
    assert stages_to_rerun(repo) == set()


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
        assert cmd.removeprefix("${guard} ").startswith("PYTHONPATH=src python "), name
    code = "import debiaslab; print(debiaslab.__file__)"
    out = subprocess.run(["sh", "-c", f"PYTHONPATH=src python -c '{code}'"], cwd=repo, env=env(),
                         capture_output=True, text=True, check=True).stdout
    assert Path(out.strip()).resolve().is_relative_to(repo.resolve())


def test_killed_training_stage_resumes_and_reproduces_its_outputs(repo):
    """SIGKILL `dvc repro` mid-training: nothing half-written is left as an output, and the
    rerun resumes from the last finished epoch to bit-identical outputs (dvc status clean)."""
    model = repo / "models/baseline/Smiling/model.pt"
    before, lock_before = model.read_bytes(), locked_outs(repo)
    proc = subprocess.Popen(["dvc", "repro", "-f", "-s", "train_baseline@Smiling"], cwd=repo,
                            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    resume, deadline = model.with_name("resume.pt"), time.monotonic() + 600
    while not resume.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    running = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: dvc and the stage it runs
    proc.wait()
    assert running and resume.exists(), "the stage ended before epoch 1 could be interrupted"
    assert not model.exists()  # DVC removed the old output; the new one was never written
    assert not list(model.parent.glob(".model.pt.tmp-*"))
    # The stage is unchanged, so a plain repro would check the old model out of DVC's cache (it
    # would, for a user); drop that copy, as when the killed run had new params, to make it resume.
    md5 = lock_before["models/baseline/Smiling/model.pt"]
    (repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).unlink()
    out = sh(repo, "dvc", "repro")
    assert "resuming from models/baseline/Smiling/resume.pt after epoch 1" in out
    assert model.read_bytes() == before and not resume.exists()
    assert locked_outs(repo) == lock_before
    assert "up to date" in sh(repo, "dvc", "status")


def test_a_team_shares_results_through_a_dvc_remote(repo, tmp_path):
    """The README's team workflow with a local-folder remote: push from one clone, `git clone &&
    dvc pull` into another; the new clone is up to date (nothing reruns) and its outputs are the
    pushed ones, byte for byte."""
    remote, clone = tmp_path / "remote", tmp_path / "clone"
    sh(repo, "dvc", "remote", "add", "team", str(remote))
    sh(repo, "dvc", "push", "-r", "team")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "results and the team's remote")
    sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    sh(clone, "dvc", "pull", "-r", "team")
    assert "Data and pipelines are up to date." in sh(clone, "dvc", "status")
    out = sh(clone, "dvc", "repro")
    assert "Running stage" not in out and "up to date" in out
    assert locked_outs(clone) == locked_outs(repo)
    for path in ("models/baseline/Smiling/model.pt", "reports/index.html", "data/params_checked"):
        assert (clone / path).read_bytes() == (repo / path).read_bytes(), path
    shared = sorted(p.relative_to(repo) for p in (repo / "metrics").rglob("*.json"))
    assert shared and all((clone / p).read_bytes() == (repo / p).read_bytes() for p in shared)


def test_sweep_recipe_collects_an_experiment(repo):
    """The README's sweep recipe on the tiny pipeline: commit the run, one skew experiment, then
    `python -m debiaslab.sweep` finds both skews. Last in this file: it changes the workspace."""
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "tiny run", "--allow-empty")  # the remote test may have committed it
    sh(repo, "dvc", "exp", "run", "-n", "skew-0.5", "-S", "synthesize.correlations.Smiling.skew=0.5",
       "evaluate@baseline-Smiling")
    out = sh(repo, sys.executable, "-m", "debiaslab.sweep", "--methods", "baseline")
    rows = [line.split() for line in out.splitlines() if line.startswith(("0.5 ", "0.9 "))]
    assert [(r[0], r[1], r[2]) for r in rows] == [("0.5", "baseline", "1"), ("0.9", "baseline", "1")]
    assert (repo / "reports/sweeps/skew_sweep.png").stat().st_size > 1000
