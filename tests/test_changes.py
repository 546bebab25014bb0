"""`python -m debiaslab.changes` on a real git + DVC repository: one stage whose `metrics:` are
two JSON files, committed with different values (no `dvc repro`: DVC reads declared metrics files
as they are in each commit and in the workspace)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import env, sh

from debiaslab.changes import LIMIT, Change, select

DVC_YAML = """\
stages:
  score:
    cmd: python score.py
    metrics:
      - metrics/a.json:
          cache: false
      - metrics/b.json:
          cache: false
"""
FIRST = {"a": {"test": {"acc": 0.5, "deo": 0.4, "n": 100}, "loss": 2.0, "old_metric": 1.0}, "b": {"x": 1}}
# a: loss -0.5, deo -0.3, acc +0.1, n the same, old_metric removed, new_metric added; b: x +2
SECOND = {"a": {"test": {"acc": 0.6, "deo": 0.1, "n": 100}, "loss": 1.5, "new_metric": 7}, "b": {"x": 3}}
CHANGED = [["metrics/a.json", "loss", "2", "1.5", "-0.5"],
           ["metrics/a.json", "test.deo", "0.4", "0.1", "-0.3"],
           ["metrics/a.json", "test.acc", "0.5", "0.6", "+0.1"],
           ["metrics/a.json", "new_metric", "—", "7", "—"],
           ["metrics/a.json", "old_metric", "1", "—", "—"],
           ["metrics/b.json", "x", "1", "3", "+2"]]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """git init + dvc init + dvc.yaml, nothing committed yet: each test copies it (dvc init is slow)."""
    root = tmp_path_factory.mktemp("changes") / "repo"
    root.mkdir()
    sh(root, "git", "init", "-q")
    sh(root, "dvc", "init", "-q")
    (root / "dvc.yaml").write_text(DVC_YAML)
    return root


@pytest.fixture
def repo(template, tmp_path, monkeypatch) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(template, root, symlinks=True)
    monkeypatch.chdir(root)
    for key, value in env().items():
        monkeypatch.setenv(key, value)
    return root


def write_metrics(root: Path, metrics: dict[str, dict]) -> None:
    (root / "metrics").mkdir(exist_ok=True)
    for name, obj in metrics.items():
        (root / f"metrics/{name}.json").write_text(json.dumps(obj))


def commit(root: Path, metrics: dict[str, dict], message: str) -> None:
    write_metrics(root, metrics)
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", message)


def cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "debiaslab.changes", *args], cwd=root, env=env(),
                          capture_output=True, text=True, timeout=120)


def printed_rows(out: str) -> list[list[str]]:
    """The rows of the printed table (cells are two or more spaces apart)."""
    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines() if line.startswith("metrics/")]


def markdown_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| metrics/")]


def short(root: Path, rev: str) -> str:
    return sh(root, "git", "rev-parse", "--short=7", rev).strip()


def test_previous_commit_against_head_when_the_workspace_is_unchanged(repo):
    commit(repo, FIRST, "one")
    commit(repo, SECOND, "two")
    proc = cli(repo)
    assert proc.returncode == 0, proc.stderr
    assert f"HEAD~1 ({short(repo, 'HEAD~1')}) → HEAD ({short(repo, 'HEAD')}): 6 metrics changed in 2 files." \
        in proc.stdout
    assert printed_rows(proc.stdout) == CHANGED  # test.n is the same: not listed
    text = (repo / "reports/changes.md").read_text()
    assert text.startswith("# What changed in the metrics\n")
    assert "| file | metric | old | new | change |" in text
    assert markdown_rows(text) == CHANGED


def test_workspace_against_head_after_an_uncommitted_run(repo, capsys):
    from debiaslab.changes import main

    commit(repo, FIRST, "one")
    commit(repo, SECOND, "two")
    write_metrics(repo, {"b": {"x": 2.5}})  # what `dvc repro` of an uncommitted edit would leave
    main([])
    out = capsys.readouterr().out
    assert out.startswith(f"HEAD ({short(repo, 'HEAD')}) → workspace: 1 metric changed in 1 file.")
    assert printed_rows(out) == [["metrics/b.json", "x", "3", "2.5", "-0.5"]]
    main(["--b-rev", "HEAD"])  # what HEAD changed, whatever the workspace holds
    assert printed_rows(capsys.readouterr().out) == CHANGED
    main(["--a-rev", "HEAD~1"])  # HEAD~1 against the workspace
    rows = printed_rows(capsys.readouterr().out)
    assert rows[-1] == ["metrics/b.json", "x", "1", "2.5", "+1.5"]


def test_the_largest_changes_first_at_most_the_limit(repo, capsys):
    from debiaslab.changes import main

    n = LIMIT + 5
    commit(repo, {"a": {f"m{i:02d}": 0.0 for i in range(n)}, "b": {"x": 0}}, "one")
    commit(repo, {"a": {f"m{i:02d}": (-1) ** i * i / 100 for i in range(n)}, "b": {"x": 0}}, "two")
    main([])
    out = capsys.readouterr().out
    assert f"{n - 1} metrics changed in 1 file; the {LIMIT} largest are shown" in out  # m00 is 0
    metrics = [row[1] for row in printed_rows(out)]
    assert metrics == [f"m{i:02d}" for i in range(n - 1, n - 1 - LIMIT, -1)]  # |change| descending
    assert printed_rows(out)[0] == ["metrics/a.json", "m44", "0", "0.44", "+0.44"]
    assert printed_rows(out)[1] == ["metrics/a.json", "m43", "0", "-0.43", "-0.43"]
    main(["--all"])
    assert len(printed_rows(capsys.readouterr().out)) == n - 1


def test_no_previous_commit_says_so_and_exits_0(repo):
    proc = cli(repo)
    assert (proc.returncode, proc.stdout) == (0, "no commit yet: nothing to compare the metrics with\n")
    commit(repo, FIRST, "one")
    proc = cli(repo)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (f"no previous commit: HEAD ({short(repo, 'HEAD')}) is the first, and the "
                           "workspace's metrics equal it\n")
    assert "no previous commit" in (repo / "reports/changes.md").read_text()
    proc = cli(repo, "--b-rev", "HEAD")
    first = f"no previous commit: HEAD ({short(repo, 'HEAD')}) is the first\n"
    assert (proc.returncode, proc.stdout) == (0, first)


@pytest.mark.parametrize(("args", "message"), [
    (["--a-rev=-x"], "--a-rev '-x': not a revision name (expected letters, digits and _ . / ~ ^ -, "
                     "not starting with '-'"),
    (["--b-rev", "HEAD;touch x"], "--b-rev 'HEAD;touch x': not a revision name"),
    (["--a-rev", "HEAD $(id)"], "--a-rev 'HEAD $(id)': not a revision name"),
    (["--b-rev", "nosuch"], "--b-rev 'nosuch': not a commit of this git repository"),
])
def test_a_bad_revision_is_one_line_and_exit_2(repo, args, message):
    commit(repo, FIRST, "one")
    proc = cli(repo, *args)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: changes: {message}")
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (repo / "x").exists()


def test_outside_a_repository_is_one_line_and_exit_2(tmp_path):
    proc = cli(tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == (f"error: changes: {tmp_path}: not inside a git work tree; the changes compare "
                           "the metrics of git commits (run it in the repository)\n")
    sh(tmp_path, "git", "init", "-q")
    proc = cli(tmp_path)
    assert proc.returncode == 2 and "not inside a DVC repository" in proc.stderr


def test_ties_are_ordered_by_name_then_file():
    changes = [Change("b.json", "y", 0, 1), Change("a.json", "z", 0, -1), Change("a.json", "y", 1, 0),
               Change("a.json", "big", 0, 5), Change("b.json", "added", None, 1),
               Change("a.json", "s", "u", "v")]
    assert [(c.file, c.metric) for c in select(changes, None)] == [
        ("a.json", "big"), ("a.json", "y"), ("a.json", "z"), ("a.json", "s"),
        ("b.json", "y"), ("b.json", "added")]
    # the three largest over all files: big, then the |1| ties by name (y in a, y in b) before z
    assert [(c.file, c.metric) for c in select(changes, 3)] == [("a.json", "big"), ("a.json", "y"),
                                                               ("b.json", "y")]


def test_the_limit_ranks_changes_beyond_1_relative_to_the_value():
    changes = [Change("a.json", "n_test", 5000, 5100), Change("a.json", "accuracy", 0.5, 0.6),
               Change("b.json", "n_selected", 100, 1000), Change("b.json", "best_epoch", 8, 7)]
    # relative sizes: 0.0196, 0.1, 0.9, 0.125; within a file the plain |change| orders
    assert [c.metric for c in select(changes, 3)] == ["accuracy", "n_selected", "best_epoch"]
    assert [c.metric for c in select(changes, None)] == ["n_test", "accuracy", "n_selected", "best_epoch"]
