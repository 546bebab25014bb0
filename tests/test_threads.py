"""CPU threads chosen before torch loads (debiaslab.threads): nothing changed by default, the
opt-in thread count from the free cores, the user's own settings left alone, stage scripts
importing debiaslab before torch."""

import ast
import os
import subprocess
import sys

import pytest
from conftest import REPO

from debiaslab import threads

OMP_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "DEBIASLAB_THREADS", "DEBIASLAB_THREADS_CHOSEN", "OMP_DISPLAY_ENV")


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in OMP_VARS}
    return {**env, "PYTHONPATH": str(REPO / "src"), **extra}


@pytest.mark.parametrize(("cores", "busy", "expected"), [
    (2, 0.0, 2), (2, 0.4, 2), (2, 0.5, 1), (2, 1.0, 1), (2, 1.9, 1), (2, 3.0, 1),
    (1, 0.0, 1), (1, 1.0, 1), (8, 2.6, 5), (4, -0.1, 4),
])
def test_threads_for_load(cores, busy, expected):
    assert threads.threads_for_load(cores, busy) == expected


STAT_0 = """cpu  200 0 100 1000 0 0 0 0 0 0
cpu0 100 0 50 500 0 0 0 0 0 0
cpu1 100 0 50 500 0 0 0 0 0 0
cpu2 0 0 0 0 0 0 0 0 0 0
intr 12345 0 0
ctxt 999
"""
# over the sample: cpu0 fully busy (100 user), cpu1 idle (80 idle + 20 iowait), cpu2 half busy
STAT_1 = """cpu  400 0 150 1100 20 0 0 0 0 0
cpu0 200 0 50 500 0 0 0 0 0 0
cpu1 100 0 50 580 20 0 0 0 0 0
cpu2 30 0 20 50 0 0 0 0 0 0
intr 12399 0 0
"""


def test_busy_cores_from_proc_stat():
    before, after = threads.read_cpu_times(STAT_0), threads.read_cpu_times(STAT_1)
    assert sorted(before) == [0, 1, 2]  # the aggregate "cpu" line and other lines are skipped
    assert threads.busy_cores(before, after, [0, 1, 2]) == pytest.approx(1.5)
    assert threads.busy_cores(before, after, [1]) == 0.0  # only the CPUs this process may use
    assert threads.busy_cores(before, after, [0, 7]) == 1.0  # a CPU missing from /proc/stat: 0


def test_sample_busy_cores_reads_this_machine():
    busy = threads.sample_busy_cores(threads.allowed_cpus(), seconds=0.05)
    assert busy is None or 0.0 <= busy <= len(threads.allowed_cpus())


def test_usable_cores_counts_hyperthreads_once(tmp_path):
    for cpu, core in ((0, 0), (1, 1), (2, 0), (3, 1)):  # two cores, two hyperthreads each
        topo = tmp_path / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "physical_package_id").write_text("0\n")
        (topo / "core_id").write_text(f"{core}\n")
    assert threads.usable_cores([0, 1, 2, 3], sys_root=str(tmp_path)) == 2
    assert threads.usable_cores([0, 2], sys_root=str(tmp_path)) == 1
    assert threads.usable_cores([0, 5], sys_root=str(tmp_path)) == 2  # unreadable: count CPUs
    assert threads.usable_cores() >= 1


def fake(busy=1.0, cores=2):
    return {"busy": lambda cpus: busy, "cores": lambda cpus: cores}


def test_default_changes_nothing():
    env = {}
    assert threads.configure(env, **fake()) == {}
    assert env == {}  # torch's own thread count and libgomp's own wait policy


def test_auto_chooses_the_free_cores(capsys):
    env = {"DEBIASLAB_THREADS": "auto"}
    threads.configure(env, **fake(busy=1.0, cores=2))
    assert env["OMP_NUM_THREADS"] == "1" and "OMP_WAIT_POLICY" not in env
    assert "auto: 1 thread (busy cores: 1.0 of" in capsys.readouterr().err
    env = {"DEBIASLAB_THREADS": " Auto "}
    threads.configure(env, **fake(busy=0.1, cores=2))
    assert env["OMP_NUM_THREADS"] == "2"
    env = {"DEBIASLAB_THREADS": "auto"}
    threads.configure(env, **fake(busy=None, cores=3))  # no /proc/stat: all usable cores
    assert env["OMP_NUM_THREADS"] == "3"
    assert "busy cores: unknown" in capsys.readouterr().err


@pytest.mark.parametrize("user", [{"OMP_NUM_THREADS": "2"}, {"MKL_NUM_THREADS": "4"}])
def test_auto_leaves_a_thread_count_of_the_user_alone(user):
    env = {"DEBIASLAB_THREADS": "auto", **user}
    assert threads.configure(env, **fake(busy=1.0)) == {}
    assert env == {"DEBIASLAB_THREADS": "auto", **user}


def test_unknown_threads_mode_is_ignored_with_one_line(capsys):
    env = {"DEBIASLAB_THREADS": "4"}
    assert threads.configure(env, **fake()) == {}
    assert "DEBIASLAB_THREADS='4' ignored" in capsys.readouterr().err


def test_forget_auto_threads_keeps_the_users_count():
    env = {"DEBIASLAB_THREADS": "auto"}
    threads.configure(env, **fake(busy=1.0, cores=2))
    threads.forget_auto_threads(env)
    assert "OMP_NUM_THREADS" not in env and "DEBIASLAB_THREADS_CHOSEN" not in env
    env = {"OMP_NUM_THREADS": "2"}
    threads.forget_auto_threads(env)
    assert env == {"OMP_NUM_THREADS": "2"}


def imports_before_debiaslab(script):
    """Top-level modules a script imports before its first debiaslab import, and whether it
    imports torch itself before that."""
    before = []
    for node in ast.parse(script.read_text()).body:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
        else:
            continue
        if any(n.split(".")[0] == "debiaslab" for n in names):
            return before
        before.extend(n.split(".")[0] for n in names)
    return None  # no debiaslab import at the top level


def test_every_stage_imports_debiaslab_before_anything_loads_torch():
    scripts = sorted((REPO / "stages").glob("*.py"))
    assert len(scripts) > 20
    earlier = set()
    for script in scripts:
        before = imports_before_debiaslab(script)
        assert before is not None, f"{script.name}: no top-level debiaslab import"
        assert "torch" not in before, f"{script.name}: imports torch before debiaslab"
        earlier.update(before)
    earlier.discard("__future__")
    # what the stages import first (numpy, pandas, ...) must not load torch, and debiaslab's
    # package import must choose the threads (here: auto, beside nothing busy) without loading torch
    code = (f"import sys\nfor m in {sorted(earlier)!r}: __import__(m)\n"
            "assert 'torch' not in sys.modules, 'torch loaded early'\n"
            "import os, debiaslab\nassert 'torch' not in sys.modules, 'debiaslab loads torch'\n"
            "print(os.environ['OMP_NUM_THREADS'])\n")
    proc = subprocess.run([sys.executable, "-c", code], env=clean_env(DEBIASLAB_THREADS="auto"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) >= 1


def test_torchrun_relaunch_drops_an_auto_thread_count(monkeypatch):
    """Under DEBIASLAB_THREADS=auto the count chosen for one process is not passed on to the
    processes torchrun starts (torchrun gives each 1 thread unless the user set a count)."""
    from debiaslab import distributed

    env = {k: v for k, v in os.environ.items() if k not in (*OMP_VARS, "LOCAL_RANK", "WORLD_SIZE")}
    monkeypatch.setattr(os, "environ", {**env, "DEBIASLAB_THREADS": "auto"})  # a copy to change
    threads.configure(**fake(busy=0.0, cores=2))
    assert os.environ["OMP_NUM_THREADS"] == "2"
    seen = {}
    monkeypatch.setattr(os, "execv", lambda path, argv: seen.update(os.environ))
    distributed.relaunch_under_torchrun(2)
    assert "OMP_NUM_THREADS" not in seen and "DEBIASLAB_THREADS_CHOSEN" not in seen
    os.environ["OMP_NUM_THREADS"] = "2"  # the user's own: kept
    distributed.relaunch_under_torchrun(2)
    assert seen["OMP_NUM_THREADS"] == "2"
