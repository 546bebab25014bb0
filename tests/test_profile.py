"""Applying a profile edits params.yaml in place: comments, order, blank lines and flow style kept,
exactly the profile's values changed (the semantics of params.merge_overrides), and a profile that
breaks a value leaves the file byte-identical."""

import shutil
import sys

import pytest
import yaml
from conftest import REPO

from debiaslab.errors import DebiaslabError
from debiaslab.params import merge_overrides, validate_all
from debiaslab.profile import apply_profile, main

TINY = REPO / "profiles" / "tiny.yaml"


def comments(text: str) -> list[str]:
    """Every comment, whole-line or after a value, in file order (no value in params.yaml has a #)."""
    return [line.split("#", 1)[1] for line in text.splitlines() if "#" in line]


def after_blank_lines(text: str) -> list[str]:
    """The line after each blank line: where the blank lines are, whatever the line numbers."""
    lines = text.splitlines()
    return [lines[i + 1] for i, line in enumerate(lines[:-1]) if not line.strip()]


@pytest.fixture
def params(tmp_path):
    path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", path)
    return path


def test_tiny_profile_keeps_the_layout_and_changes_only_its_keys(params):
    before = params.read_text()
    merged = apply_profile(TINY, params)
    after = params.read_text()

    reference = merge_overrides(yaml.safe_load(before), yaml.safe_load(TINY.read_text()))
    assert yaml.safe_load(after) == reference == merged
    assert list(yaml.safe_load(after)) == list(reference)  # group order
    assert comments(after) == comments(before)
    assert after_blank_lines(after) == after_blank_lines(before)
    assert "  p_grid: [0.0, 0.3]" in after  # a profile's list replaces the values, in flow style

    # Every other line is kept as it was (flow style, `null`, number spelling, comment columns),
    # except that a flow collection written over two lines is joined onto one.
    named = {key for group in yaml.safe_load(TINY.read_text()).values() for key in group}
    old_lines, new_lines = before.splitlines(), set(after.splitlines())
    wrapped = [i for i, line in enumerate(old_lines) if line.split("#")[0].rstrip().endswith(",")]
    for i in wrapped:
        assert f"{old_lines[i].rstrip()} {old_lines[i + 1].strip()}" in new_lines
    for i, line in enumerate(old_lines):
        if line not in new_lines and i not in wrapped and i - 1 not in wrapped:
            assert line.split(":")[0].strip() in named, line
    validate_all(params)


def test_a_bad_profile_leaves_params_byte_identical(params):
    before = params.read_bytes()
    bad = params.parent / "bad.yaml"
    cases = {
        "train:\n  epochs: ten\n": "train.epochs: expected an integer, got 'ten'",
        "trian:\n  epochs: 2\n": "trian: unknown parameter group",
        "train: [unclosed\n": "not valid YAML",
        "- epochs\n": "expected a mapping of parameter groups",
        "train:\n  epochs: 2\n  epochs: 3\n": "not valid YAML",  # a duplicate key
    }
    for text, message in cases.items():
        bad.write_text(text)
        with pytest.raises(DebiaslabError, match=message) as err:
            apply_profile(bad, params)
        assert "\n" not in str(err.value)
        assert ".tmp-" not in str(err.value)  # names the inputs, not the temporary file
        assert params.read_bytes() == before
        assert sorted(p.name for p in params.parent.iterdir()) == ["bad.yaml", "params.yaml"]
    bad.write_text("train:\n  epochs: ten\n")
    with pytest.raises(DebiaslabError, match=rf"^{bad} applied to {params}: train\.epochs: "):
        apply_profile(bad, params)
    with pytest.raises(DebiaslabError, match=rf"^{params.parent / 'nope.yaml'}: file not found$"):
        apply_profile(params.parent / "nope.yaml", params)
    assert params.read_bytes() == before


def test_cli_resolves_a_name_and_reports_one_line(params, monkeypatch, capsys):
    (params.parent / "profiles").mkdir()
    shutil.copy(TINY, params.parent / "profiles" / "tiny.yaml")
    (params.parent / "profiles" / "broken.yaml").write_text("gan:\n  epochs: 0\n")
    monkeypatch.chdir(params.parent)
    monkeypatch.setattr(sys, "argv", ["profile", "broken"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == ("error: profile: profiles/broken.yaml applied to params.yaml: gan.epochs: expected a "
                    "positive integer, got 0")
    monkeypatch.setattr(sys, "argv", ["profile", "tiny"])
    main()
    assert capsys.readouterr().out == "applied tiny to params.yaml\n"
    assert yaml.safe_load(params.read_text())["train"]["epochs"] == 2


def test_a_file_rewritten_by_dvc_exp_run_set_param_takes_a_profile(params):
    """``dvc exp run -S`` rewrites params.yaml through ruamel (lists in block style, null as an empty
    value); the profile must apply on top and keep the -S value it does not name."""
    hydra = pytest.importorskip("dvc.utils.hydra")
    hydra.apply_overrides(params, ["synthesize.correlations.Smiling.skew=0.5"])
    dvc_text = params.read_text()
    apply_profile(TINY, params)
    after = params.read_text()
    reference = merge_overrides(yaml.safe_load(dvc_text), yaml.safe_load(TINY.read_text()))
    assert yaml.safe_load(after) == reference
    assert reference["synthesize"]["correlations"]["Smiling"]["skew"] == 0.5
    assert comments(after) == comments(dvc_text)
    lines = after.splitlines()
    p_grid = next(i for i, line in enumerate(lines) if line.startswith("  p_grid:"))
    assert lines[p_grid + 1:p_grid + 4] == ["  - 0.0", "  - 0.3", "  epochs: 3"]  # still a block list
    validate_all(params)
    hydra.apply_overrides(params, ["train.epochs=3"])  # and -S still works on the profile's output
    assert validate_all(params)["train"].epochs == 3
