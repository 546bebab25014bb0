"""debiaslab.cluster: settings, scheduler parameters, checkout checks and the job's locks, without
a scheduler; tests/test_pipeline.py runs real jobs with submitit's local executor on the tiny pipeline."""

import argparse
import os
import re
import subprocess
import sys
import threading
import time

import pytest
from conftest import env

from debiaslab import cluster
from debiaslab.cluster import (
    Checkout,
    Setting,
    check_checkout,
    executor_parameters,
    job_state,
    last_line,
    main,
    run_setting,
    settings,
)
from debiaslab.errors import DebiaslabError

TARGETS = ["evaluate@baseline-Smiling", "evaluate@augmented-Smiling"]
SUBMIT = ["submit", "--executor", "local", "--name", "demo", "--seeds", "0", "1"]


def _command(seed, *extra, targets=TARGETS):
    return ("dvc", "--wait-for-lock", "exp", "run", "--temp", "-n", f"demo-seed{seed}",
            "-S", f"train.seed={seed}", "-S", f"latents.seed={seed}", *extra, *targets)


def test_one_setting_per_seed_as_argument_lists():
    got = settings(name="demo", seeds=[0, 1], seed_params=["train.seed", "latents.seed"],
                   set_params=["gan.source=renderer"], targets=TARGETS)
    assert got == [Setting(f"demo-seed{s}", _command(s, "-S", "gan.source=renderer")) for s in (0, 1)]


def test_no_targets_runs_the_whole_pipeline():
    assert settings(name="demo", seeds=[3], seed_params=["train.seed", "latents.seed"])[0].command == \
        _command(3, targets=[])


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "a b"}, "--name 'a b'"),
    ({"targets": ["-rf"]}, "TARGET '-rf'"),
    ({"set_params": ["x=$(rm)"]}, "value '$(rm)'"),
    ({"set_params": ["train.seed=3"]}, "set per seed by --seed-params"),
    ({"seed_params": ["train seed"]}, "--seed-params 'train seed'"),
])
def test_bad_settings_are_one_line_errors(kwargs, message):
    base = {"name": "demo", "seeds": [0], "seed_params": ["train.seed"]}
    with pytest.raises(DebiaslabError, match=re.escape(message)):
        settings(**{**base, **kwargs})


def _args(**kw):
    base = {"executor": "slurm", "name": "demo", "time_min": "240", "cpus_per_task": None,
            "gpus_per_node": None, "mem_gb": None, "partition": None, "max_parallel": None}
    return argparse.Namespace(**{**base, **kw})


def test_slurm_parameters_only_as_given():
    assert executor_parameters(_args()) == {"name": "demo", "timeout_min": 240}
    assert executor_parameters(_args(cpus_per_task="4", gpus_per_node="1", mem_gb="16", partition="gpu",
                                     max_parallel="2", time_min="90")) == {
        "name": "demo", "timeout_min": 90, "cpus_per_task": 4, "gpus_per_node": 1, "mem_gb": 16.0,
        "slurm_partition": "gpu", "slurm_array_parallelism": 2}
    assert executor_parameters(_args(gpus_per_node="0"))["gpus_per_node"] == 0


@pytest.mark.parametrize("kw, message", [
    ({"time_min": "0"}, "--time-min '0': expected a positive integer"),
    ({"cpus_per_task": "two"}, "--cpus-per-task 'two'"),
    ({"max_parallel": "-1"}, "--max-parallel '-1'"),
    ({"mem_gb": "nan"}, "--mem-gb 'nan'"),
    ({"partition": "gpu;rm"}, "--partition 'gpu;rm'"),
    ({"executor": "local", "partition": "gpu"}, "--partition: a Slurm option"),
])
def test_bad_scheduler_options_are_one_line_errors(kw, message):
    with pytest.raises(DebiaslabError, match=message):
        executor_parameters(_args(**kw))


def _git_repo(root, *, dvc=True):
    root.mkdir(exist_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, env=env())
    (root / "params.yaml").write_text("seed: 0\n")
    if dvc:
        (root / ".dvc").mkdir()
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=env())
    subprocess.run(["git", "commit", "-qm", "c"], cwd=root, check=True, env=env())
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_checkout_must_be_committed_and_unmoved(tmp_path):
    head = _git_repo(tmp_path)
    assert check_checkout(tmp_path) == head == check_checkout(tmp_path, head)
    (tmp_path / "notes.txt").write_text("untracked files do not matter")
    assert check_checkout(tmp_path, head) == head
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    with pytest.raises(DebiaslabError, match="uncommitted changes in params.yaml"):
        check_checkout(tmp_path)
    with pytest.raises(DebiaslabError, match=f"not the commit {'0' * 7}"):
        check_checkout(tmp_path, "0" * 40)


def test_checkout_must_be_a_dvc_repository(tmp_path):
    _git_repo(tmp_path, dvc=False)
    with pytest.raises(DebiaslabError, match="not the root of a DVC repository"):
        check_checkout(tmp_path)


def _fake_dvc(tmp_path, monkeypatch, script):
    """A `dvc` module on sys.path that the job runs as `python -m dvc ...` instead of DVC."""
    (tmp_path / "fake").mkdir(parents=True)
    (tmp_path / "fake" / "dvc.py").write_text(script)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path / 'fake'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")


def test_job_streams_dvc_and_ends_with_its_outcome(tmp_path, monkeypatch, capsys):
    head = _git_repo(tmp_path / "repo")
    _fake_dvc(tmp_path, monkeypatch, "import sys\nprint('Reproducing experiment', sys.argv[1:])\n"
                                     "print('ERROR: stage failed')\nsys.exit(3)\n")
    checkout = Checkout(str(tmp_path / "repo"), head, str(tmp_path))
    with pytest.raises(DebiaslabError, match="demo-seed0: dvc exited with 3: ERROR: stage failed"):
        run_setting(Setting("demo-seed0", ("dvc", "exp", "run")), checkout)
    out = capsys.readouterr().out.splitlines()
    assert out == ["Reproducing experiment ['exp', 'run']", "ERROR: stage failed",
                   "error: demo-seed0: dvc exited with 3: ERROR: stage failed"]
    _fake_dvc(tmp_path / "ok", monkeypatch, "print('Reproducing experiment x')\nprint('Ran x')\n")
    assert run_setting(Setting("x", ("dvc",)), checkout).startswith("x: done in ")


def test_job_refuses_a_moved_checkout_before_running_dvc(tmp_path, capsys):
    _git_repo(tmp_path)
    checkout = Checkout(str(tmp_path), "0" * 40, str(tmp_path))
    with pytest.raises(DebiaslabError, match="not the commit 0000000"):
        run_setting(Setting("demo-seed0", ("no-such-module",)), checkout)
    assert capsys.readouterr().out.startswith("error: demo-seed0: ")


def test_start_lock_is_held_until_dvc_has_started(tmp_path, monkeypatch):
    """A second job cannot check the checkout or start DVC while the first is between its check
    and DVC's start line; it can as soon as that line is printed, while the first still runs."""
    head = _git_repo(tmp_path / "repo")
    _fake_dvc(tmp_path, monkeypatch, "import time\ntime.sleep(1.0)\nprint('Reproducing experiment a', "
                                     "flush=True)\ntime.sleep(1.5)\n")
    checkout = Checkout(str(tmp_path / "repo"), head, str(tmp_path))
    t0 = time.monotonic()
    first = threading.Thread(target=run_setting, args=(Setting("a", ("dvc",)), checkout))
    first.start()
    time.sleep(0.3)
    with cluster._flock(tmp_path / "start.lock", blocking=False) as taken:
        assert not taken  # the first job is starting
    with cluster._flock(tmp_path / "start.lock"):
        waited = time.monotonic() - t0
    first.join()
    total = time.monotonic() - t0
    assert 0.9 < waited < total - 1.0  # released at the start line, long before the run ended


def test_slots_limit_jobs_running_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(cluster, "SLOT_POLL_S", 0.02)
    running, peak, lock = [0], [0], threading.Lock()

    def job():
        with cluster._slot(tmp_path, 2):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.1)
            with lock:
                running[0] -= 1

    threads = [threading.Thread(target=job) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2 and running[0] == 0


def test_last_line_skips_submitit_log_lines():
    text = ("submitit INFO (2026-12-02 11:01:52,070) - Starting\nRan experiment(s): demo-seed0\n"
            "demo-seed0: done in 12 s\n\nsubmitit INFO (2026-12-02 11:02:03,626) - Exiting\n")
    assert last_line(text) == "demo-seed0: done in 12 s"
    assert last_line(None) == ""


class _Job:
    def __init__(self, state, done=True, exc=None, missing=False):
        self.state, self._done, self._exc, self._missing = state, done, exc, missing

    def done(self):
        return self._done

    def exception(self):
        if self._missing:
            raise RuntimeError("no result file")
        return self._exc


def test_job_state_tells_failed_from_finished():
    assert job_state(_Job("FINISHED")) == "COMPLETED"
    assert job_state(_Job("FINISHED", exc=ValueError())) == "FAILED"
    assert job_state(_Job("FINISHED", missing=True)) == "FAILED"
    assert job_state(_Job("RUNNING", done=False)) == "RUNNING"
    assert job_state(_Job("TIMEOUT")) == "TIMEOUT"


def test_dry_run_checks_and_prints_the_commands(tmp_path, monkeypatch, capsys):
    _git_repo(tmp_path)
    monkeypatch.chdir(tmp_path)
    main([*SUBMIT, *TARGETS, "--dry-run", "--time-min", "30"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("local executor, {'name': 'demo', 'timeout_min': 30}; from ")
    assert lines[1:] == [" ".join(_command(s)) for s in (0, 1)]
    assert not (tmp_path / ".submitit").exists()


@pytest.mark.parametrize("argv, message", [
    ([*SUBMIT, "--dry-run", "--mem-gb", "8"], "error: cluster: --mem-gb: a Slurm option"),
    ([*SUBMIT, "--dry-run", "--max-parallel", "0"], "error: cluster: --max-parallel '0'"),
    (["submit", "--executor", "local", "--name", "demo", "--seeds", "1.5", "--dry-run"],
     "error: cluster: --seeds '1.5'"),
])
def test_bad_input_is_one_line(tmp_path, monkeypatch, capsys, argv, message):
    _git_repo(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and "\n" not in err


def test_slurm_without_slurm_is_one_line(tmp_path, monkeypatch, capsys):
    if subprocess.run(["which", "srun"], capture_output=True).returncode == 0:
        pytest.skip("this machine has Slurm")
    _git_repo(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["submit", "--executor", "slurm", "--name", "demo", "--seeds", "0"])
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cluster: --executor slurm: Could not detect") and "\n" not in err



def test_slurm_submission_is_one_throttled_job_array(tmp_path):
    """The sbatch script and pickled jobs submitit writes for Slurm, with its own mocked sbatch."""
    mocked = pytest.importorskip("submitit.slurm.test_slurm").mocked_slurm
    import pickle

    params = executor_parameters(_args(partition="gpu", cpus_per_task="8", gpus_per_node="1", mem_gb="32",
                                       max_parallel="2", time_min="90"))
    items = settings(name="demo", seeds=[0, 1, 2], seed_params=["train.seed", "latents.seed"],
                     targets=TARGETS)
    checkout = Checkout(str(tmp_path), "a" * 40, str(tmp_path / ".submitit"))
    with mocked():
        jobs = cluster.submit_jobs(cluster.make_executor("slurm", tmp_path / "logs", params), items, checkout)
    assert [j.job_id for j in jobs] == ["12_0", "12_1", "12_2"]  # the mock's job id, one array
    script = (tmp_path / "logs" / "12_submission.sh").read_text()
    for line in ("--array=0-2%2", "--partition=gpu", "--time=90", "--cpus-per-task=8", "--gpus-per-node=1",
                 "--mem=32GB", "--job-name=demo", f"--output={tmp_path / 'logs'}/%A_%a_0_log.out"):
        assert f"#SBATCH {line}\n" in script, line
    delayed = pickle.loads((tmp_path / "logs" / "12_1_submitted.pkl").read_bytes())
    assert delayed.function is run_setting and delayed.args == (items[1], checkout)

def test_module_runs_as_a_script(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "debiaslab.cluster", "submit", "--help"],
                          capture_output=True, text=True, env=env())
    assert proc.returncode == 0 and "--executor" in proc.stdout


@pytest.mark.slow
def test_local_jobs_run_seeded_experiments_that_exp_show_and_sweep_read(tmp_path):
    """End to end on the tiny pipeline: 2 seeds of one cheap stage (no GAN chain) as 2 local jobs
    running at once in one repository; the experiments land in `dvc exp show` and the sweep."""
    import json

    from conftest import tiny_repo

    root = tiny_repo(tmp_path)
    job_env = {**env(), "PYTHONPATH": str(root / "src")}  # the jobs import this checkout's package
    proc = subprocess.run([sys.executable, "-m", "debiaslab.cluster", "submit", "--executor", "local",
                           "--name", "cl", "--seeds", "0", "1", "--time-min", "30", "--wait",
                           "evaluate@baseline-Smiling"], cwd=root, env=job_env, capture_output=True,
                          text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = [line.split("\t") for line in proc.stdout.splitlines() if "\t" in line]
    assert sorted((r[0], r[1]) for r in report) == [("cl-seed0", "COMPLETED"), ("cl-seed1", "COMPLETED")]
    assert all(r[2].startswith(f"{r[0]}: done in ") for r in report)

    shown = json.loads(subprocess.run(["dvc", "exp", "show", "--json"], cwd=root, env=job_env,
                                      capture_output=True, text=True, check=True).stdout)
    exps = {e["name"]: e["revs"][0]["data"] for node in shown for e in node.get("experiments") or []}
    assert set(exps) == {"cl-seed0", "cl-seed1"}
    for seed in (0, 1):
        data = exps[f"cl-seed{seed}"]
        assert data["params"]["params.yaml"]["data"]["train"]["seed"] == seed
        metrics = data["metrics"]["metrics/evaluate/baseline/Smiling.json"]["data"]
        assert "DEO" in metrics["test"]["Eyeglasses"]
    assert exps["cl-seed0"]["metrics"] != exps["cl-seed1"]["metrics"]  # two trainings, not one copied

    sweep = subprocess.run([sys.executable, "-m", "debiaslab.sweep", "--param", "train.seed",
                            "--methods", "baseline", "--out", "reports/sweeps/cl"], cwd=root, env=job_env,
                           capture_output=True, text=True)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    assert "(2 runs)" in sweep.stdout
    assert not list((root / ".dvc/tmp/exps/standalone").glob("tmp*"))  # the temporary copies are gone
