"""Stage scripts end with one line for input and file-system problems, a clean traceback for bugs."""

import subprocess
import sys

import pytest
from conftest import REPO

SCRIPT = """
import errno, sys
from debiaslab.errors import DebiaslabError, stage_main

@stage_main("demo")
def main(kind):
    if kind == "input":
        raise DebiaslabError("params.yaml: train.epochs: expected an integer, got 'ten'")
    if kind == "read-only":
        raise PermissionError(errno.EROFS, "Read-only file system", "models/baseline/Smiling/model.pt")
    if kind == "disk-full":
        raise OSError(errno.ENOSPC, "No space left on device", "data/prepared")
    if kind == "bug":
        from dvclive import Live
        live = Live(sys.argv[2], dvcyaml=False, save_dvc_exp=False)
        live.log_metric("loss", 1.0)
        raise ValueError("a bug")

if sys.argv[1] == "interrupt-at-import":
    import debiaslab  # what every stage imports first; torch's import follows and takes seconds
    raise KeyboardInterrupt
main(sys.argv[1])
"""


def run(tmp_path, kind):
    return subprocess.run([sys.executable, "-c", SCRIPT, kind, str(tmp_path / "live")], cwd=tmp_path,
                          env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("kind", "line"), [
    ("input", "error: demo: params.yaml: train.epochs: expected an integer, got 'ten'"),
    ("read-only", "error: demo: models/baseline/Smiling/model.pt: Read-only file system (check the "
                  "folder's permissions and free space)"),
    ("disk-full", "error: demo: data/prepared: No space left on device (check the folder's "
                  "permissions and free space)"),
])
def test_input_and_file_system_problems_are_one_line(tmp_path, kind, line):
    proc = run(tmp_path, kind)
    assert proc.returncode == 2 and proc.stderr == line + "\n"


def test_a_bug_keeps_its_traceback_without_shutdown_noise(tmp_path):
    proc = run(tmp_path, "bug")
    assert proc.returncode == 1
    assert proc.stderr.startswith("Traceback") and proc.stderr.endswith("ValueError: a bug\n")
    assert "Exception ignored" not in proc.stderr


def test_ctrl_c_during_start_up_imports_is_one_line(tmp_path):
    proc = run(tmp_path, "interrupt-at-import")
    assert proc.returncode in (130, -2)  # Python re-raises SIGINT on an uncaught KeyboardInterrupt
    assert proc.stderr == "error: -c: interrupted\n"
