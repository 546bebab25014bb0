"""Hostile params: no value from params.yaml runs a command or removes a file outside the repository.

The end-to-end tests drive the real dvc.yaml through `dvc repro`, `dvc exp run -S`, `dvc repro -s`
and `make repro` on a tiny copy of the project; only check_params (and the guard) ever runs there,
so they take seconds.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, env, sh, tiny_repo

from debiaslab.check_params import check, check_interpolations, main
from debiaslab.errors import DebiaslabError

DVC_YAML = yaml.safe_load((REPO / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def with_value(key: str, value) -> dict:
    params = yaml.safe_load(yaml.safe_dump(PARAMS))  # a deep copy
    *path, last = key.split(".")
    node = params
    for part in path:
        node = node[part]
    node[last] = value
    return params


def test_the_default_params_pass(monkeypatch):
    monkeypatch.chdir(REPO)
    check()


@pytest.mark.parametrize(("key", "value"), [
    ("attributes.protected", ["Eyeglasses;touch pwned;echo"]),
    ("attributes.targets", ["Smiling", "$(touch pwned)"]),
    ("attributes.protected", ["../../../../tmp/victim"]),
    ("attributes.protected", ["Eyeglasses\ntouch pwned"]),
    ("methods.multilabel", ["erm", "`touch pwned`"]),
    ("methods.debias", ["-rf"]),
    ("colored_digits.severities", [1.0, "1.0 && touch pwned"]),
    ("colored_digits.severities", [".."]),
])
def test_values_that_reach_commands_or_output_paths_must_be_plain_names(key, value):
    with pytest.raises(DebiaslabError, match=r"is not a plain name") as err:
        check_interpolations(with_value(key, value), DVC_YAML)
    assert key.split(".")[1] in str(err.value) and "\n" not in str(err.value).strip("'")


def test_every_params_reference_in_dvc_yaml_is_checked():
    """Each ${group.key} dvc.yaml uses is resolved, so a new interpolation cannot skip the check."""
    with pytest.raises(DebiaslabError, match=r"methods\.\w+: missing"):
        check_interpolations({k: v for k, v in PARAMS.items() if k != "methods"}, DVC_YAML)


def test_a_read_only_path_may_be_any_existing_folder(tmp_path):
    odd = tmp_path / "my data; (copy)"
    odd.mkdir()
    check_interpolations(with_value("data.root", str(odd)), DVC_YAML)
    with pytest.raises(DebiaslabError, match=r"data.root: .*not found, and no stage in dvc.yaml writes it"):
        check_interpolations(with_value("data.root", str(tmp_path / "absent")), DVC_YAML)
    check_interpolations(with_value("data.root", "data/synthfaces"), DVC_YAML)  # synthesize writes it


def test_main_prints_one_line_and_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_value("attributes.protected", ["a;b"])))
    with pytest.raises(SystemExit) as exit_:
        main(["--stamp", "data/params_checked"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: check_params: params.yaml: attributes.protected")
    assert not (tmp_path / "data").exists()  # no stamp: every stage stays blocked


def test_every_stage_depends_on_the_check_and_starts_with_the_guard():
    for name, stage in DVC_YAML["stages"].items():
        body = stage.get("do", stage)
        if name == "check_params":
            assert body["outs"] == ["data/params_checked"]  # cached: a pull restores it
            continue
        assert "data/params_checked" in body["deps"], name
        assert body["cmd"].startswith("${guard} "), name
    assert DVC_YAML["vars"] == [{"guard": "PYTHONPATH=src python stages/check_params.py || exit 2;"}]


# --- end to end, through DVC -------------------------------------------------------------------

@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A tiny copy of the project (committed), a victim folder beside it, and a marker path."""
    base = tmp_path_factory.mktemp("hostile")
    (base / "repo").mkdir()
    repo = tiny_repo(base / "repo")
    return repo, base


def run(repo, *cmd):
    return subprocess.run(cmd, cwd=repo, env=env(), capture_output=True, text=True, timeout=600)


def set_param(repo: Path, key: str, value) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    *path, last = key.split(".")
    node = params
    for part in path:
        node = node[part]
    node[last] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def victim(base: Path) -> dict[Path, bytes]:
    """Files outside the repository that a `../` attribute name would make DVC remove."""
    files = {base / "victim/models/model.pt": b"weights", base / "victim/metrics.json": b"{}",
             base / "victim/plots/metrics/val/score.tsv": b"step\tscore\n"}
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def assert_blocked(proc, repo, base, files):
    assert proc.returncode != 0
    assert "error: check_params: params.yaml: attributes.protected[0]" in proc.stderr, proc.stderr
    assert not [p for p in base.rglob("pwned*") if p.is_file()], "a params value ran a shell command"
    assert {p: p.read_bytes() for p in files} == files, "a params value removed a file"
    # no stage ran (`dvc exp run` leaves empty folders for outputs, nothing else)
    assert not [p for p in repo.glob("models/**/*") if p.is_file()]
    assert not (repo / "data/synthfaces").exists()


@pytest.mark.parametrize("value", ["Eyeglasses;touch ../pwned_shell;echo", "../../victim"])
def test_dvc_repro_stops_before_any_command_or_removal(hostile, value):
    repo, base = hostile
    files = victim(base)
    sh(repo, "git", "checkout", "-q", "params.yaml")
    set_param(repo, "attributes.protected", [value])
    assert_blocked(run(repo, "dvc", "repro"), repo, base, files)
    assert_blocked(run(repo, "dvc", "repro", "train_protected@" + value), repo, base, files)


def test_dvc_exp_run_set_param_is_checked_too(hostile):
    repo, base = hostile
    files = victim(base)
    sh(repo, "git", "checkout", "-q", "params.yaml")
    proc = run(repo, "dvc", "exp", "run", "-S", "attributes.protected=['Eyeglasses;touch ../pwned_exp']")
    assert_blocked(proc, repo, base, files)


def test_single_stage_repro_is_stopped_by_the_guard(hostile):
    """`dvc repro -s` skips the check_params stage; the command's own guard still stops it."""
    repo, base = hostile
    files = victim(base)
    sh(repo, "git", "checkout", "-q", "params.yaml")
    sh(repo, "dvc", "repro", "check_params")  # a stamp from earlier, good params
    (repo / "data/prepared").mkdir(exist_ok=True)  # the stage's other input, as after a run
    value = "Eyeglasses;touch ../pwned_single;echo"
    set_param(repo, "attributes.protected", [value])
    assert_blocked(run(repo, "dvc", "repro", "-s", "train_protected@" + value), repo, base, files)


def test_make_repro_is_checked(hostile):
    repo, base = hostile
    files = victim(base)
    sh(repo, "git", "checkout", "-q", "params.yaml")
    set_param(repo, "attributes.protected", ["Eyeglasses;touch ../pwned_make;echo"])
    venv = Path(sys.executable).parent.parent
    (repo / "Makefile").write_text((REPO / "Makefile").read_text())
    proc = run(repo, "make", "-o", f"{venv}/.installed", f"VENV={venv}", "repro")
    assert_blocked(proc, repo, base, files)


@pytest.mark.parametrize(("key", "value"), [
    ("attributes.targets", []), ("hparams.lff.q", "abc"), ("data.root", "no/such/folder")])
def test_a_bad_param_removes_no_earlier_output(hostile, key, value):
    """Validation runs before DVC removes a stage's outputs, so good results survive a typo."""
    repo, _ = hostile
    sh(repo, "git", "checkout", "-q", "params.yaml")
    kept = repo / "metrics/train/baseline/Smiling/metrics.json"
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text('{"best_val_score": 0.9}\n')
    set_param(repo, key, value)
    proc = run(repo, "dvc", "repro")
    assert proc.returncode != 0 and "error: check_params: params.yaml:" in proc.stderr, proc.stderr
    assert kept.read_text() == '{"best_val_score": 0.9}\n'
    os.remove(kept)
