"""debiaslab.sweep on a small hand-made `dvc exp show --json -A` output (the DVC 3.x layout).

The fixture (tests/fixtures/exp_show.json) holds: the workspace and its HEAD commit ``main`` (same
results); under main the experiments seed1 and seed2 (skew 0.9), skew-0.5 (augmented metric file
missing), skew-0.6 (augmented file unchanged from main: the stage did not run), skew-0.7 (running),
skew-0.8 (queued) and gan20 (failed); an older commit with the same baseline result and a different
augmented one; and the oldest commit, without evaluate metrics.
"""

import json
import math
from pathlib import Path

import pytest

from debiaslab.errors import DebiaslabError
from debiaslab.sweep import Row, aggregate, deduplicate, main, parse_exp_show

FIXTURE = Path(__file__).parent / "fixtures" / "exp_show.json"
METHODS = ("baseline", "augmented")
HEAD, OLD = "a" * 40, "b" * 40


@pytest.fixture(scope="module")
def exps():
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def parsed(exps):
    return parse_exp_show(exps, methods=METHODS)


def find(rows, experiment, method):
    (row,) = [r for r in rows if r.experiment == experiment and r.method == method]
    return row


def test_parse_tidy_rows(parsed):
    rows, _ = parsed
    assert {(r.experiment, r.method) for r in rows} == {
        ("workspace", "baseline"), ("workspace", "augmented"), ("main", "baseline"), ("main", "augmented"),
        ("seed1", "baseline"), ("seed1", "augmented"), ("seed2", "baseline"), ("seed2", "augmented"),
        ("skew-0.5", "baseline"), ("skew-0.6", "baseline"),
        ("bbbbbbb", "baseline"), ("bbbbbbb", "augmented")}
    r = find(rows, "seed1", "augmented")
    assert (r.rev, r.baseline, r.param_value, r.seed) == ("2" * 40, HEAD, 0.9, 1)
    assert (r.value, r.lo, r.hi) == (0.40, 0.30, 0.50)
    assert find(rows, "skew-0.5", "baseline").param_value == 0.5
    assert find(rows, "bbbbbbb", "augmented").baseline == OLD


def test_parse_skips_unusable_revisions(parsed):
    _, skips = parsed
    why = {(s.experiment, s.method): s.reason for s in skips}
    assert why[("skew-0.7", None)] == "running"  # its metrics are the temporary copy's, partly stale
    assert why[("skew-0.8", None)] == "queued"
    assert why[("gan20", None)] == "failed"
    assert why[("skew-0.5", "augmented")] == "no metrics/evaluate/augmented/Smiling.json"
    assert "identical to its baseline commit aaaaaaa" in why[("skew-0.6", "augmented")]
    assert why[("ccccccc", "baseline")] == "no metrics/evaluate/baseline/Smiling.json"
    assert why[("ccccccc", "augmented")] == "no metrics/evaluate/augmented/Smiling.json"


def test_parse_other_param_and_metric(exps):
    rows, _ = parse_exp_show(exps, param="train.seed", methods=["baseline"])
    assert {r.param_value for r in rows} == {0, 1, 2}
    rows, skips = parse_exp_show(exps, methods=["baseline"], metric="BA")
    assert find(rows, "main", "baseline").value == 0.03
    # BA is the same number in every file: where the skew or seed differs, the file looks unchanged
    assert {s.experiment for s in skips if "identical" in s.reason} == {"seed1", "seed2", "skew-0.5",
                                                                        "skew-0.6"}


def test_deduplicate_keeps_one_row_per_setting(parsed):
    rows = deduplicate(parsed[0])
    # the workspace reproduces main: main (a commit) is kept
    assert find(rows, "workspace", "baseline").status == "duplicate"
    assert find(rows, "workspace", "baseline").note == "same as main"
    assert find(rows, "main", "baseline").status == "used"
    # the older commit: same baseline result, an older (different) augmented one
    assert find(rows, "bbbbbbb", "baseline").status == "duplicate"
    assert find(rows, "bbbbbbb", "augmented").status == "superseded"
    used = [(r.param_value, r.seed, r.method) for r in rows if r.status == "used"]
    assert len(used) == len(set(used)) == 8


def test_deduplicate_newest_wins_and_workspace_counts_as_newest():
    def row(name, rev, ts, value, order):
        return Row(name, rev, rev, ts, order, 0.9, 0, "baseline", value, value - 0.1, value + 0.1)

    rows = deduplicate([row("workspace", "workspace", None, 0.7, 0), row("main", HEAD, "2026-01-02", 0.4, 1),
                        row("old", OLD, "2026-01-01", 0.4, 2)])
    assert [r.status for r in rows] == ["used", "superseded", "superseded"]


def test_aggregate_mean_std_over_seeds(parsed):
    points = {(p.param_value, p.method): p for p in aggregate(deduplicate(parsed[0]), METHODS)}
    assert set(points) == {(0.5, "baseline"), (0.6, "baseline"), (0.9, "baseline"), (0.9, "augmented")}
    base = points[(0.9, "baseline")]  # seeds 0, 1, 2: 0.4, 0.5, 0.6
    assert (base.n, base.seeds) == (3, (0, 1, 2))
    assert base.mean == pytest.approx(0.5)
    assert base.std == pytest.approx(0.1)  # sqrt(((-0.1)^2 + 0 + 0.1^2) / (3 - 1))
    assert base.err == pytest.approx((0.1, 0.1))
    assert (base.lo, base.hi) == (None, None)
    aug = points[(0.9, "augmented")]  # 0.3, 0.4, 0.2: the superseded 0.9 of the old commit is out
    assert (aug.n, aug.mean, aug.std) == (3, pytest.approx(0.3), pytest.approx(0.1))


def test_aggregate_single_run_uses_bootstrap_interval(parsed):
    points = {(p.param_value, p.method): p for p in aggregate(deduplicate(parsed[0]), METHODS)}
    p = points[(0.5, "baseline")]
    assert (p.n, p.mean, p.std, p.lo, p.hi) == (1, 0.05, None, 0.01, 0.09)
    assert p.err == pytest.approx((0.04, 0.04))


def test_aggregate_by_hand_and_order():
    rows = [Row(f"e{i}", str(i), "x", None, i, skew, seed, method, v, None, None)
            for i, (skew, seed, method, v) in enumerate([
                (0.9, 0, "augmented", 0.2), (0.9, 1, "augmented", 0.4),
                (0.7, 0, "baseline", 0.1), (0.9, 0, "baseline", 0.5)])]
    points = aggregate(rows, ["baseline", "augmented"])
    assert [(p.param_value, p.method) for p in points] == [
        (0.7, "baseline"), (0.9, "baseline"), (0.9, "augmented")]
    aug = points[2]
    assert aug.mean == pytest.approx(0.3)
    assert aug.std == pytest.approx(math.sqrt(0.02))  # ((0.1^2 + 0.1^2) / 1) ** 0.5
    assert points[0].err == (0.0, 0.0)  # a single run without an interval: no bar


def test_cli_writes_csv_and_plot(tmp_path, capsys):
    out = tmp_path / "sweeps" / "skew_sweep"
    main(["--input", str(FIXTURE), "--out", str(out), "--methods", "baseline,augmented"])
    png, csv_path = out.with_suffix(".png"), out.with_suffix(".csv")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("experiment,rev,baseline,timestamp,param,param_value,seed,method,metric")
    assert len(lines) == 1 + 12
    assert sum(line.endswith(",used,") for line in lines) == 8
    assert sorted(p.name for p in out.parent.iterdir()) == ["skew_sweep.csv", "skew_sweep.png"]  # no temp
    captured = capsys.readouterr()
    assert "0.9   baseline   3  0,1,2  0.500  0.100  -" in captured.out
    assert "0.5   baseline   1  0      0.050  -      [0.010, 0.090]" in captured.out
    assert "skew-0.7 (running)" in captured.err and "gan20 (failed)" in captured.err


@pytest.mark.parametrize(("args", "message"), [
    (["--param", "synthesize.correlations.Smiling.skw"],
     "error: sweep: unknown param synthesize.correlations.Smiling.skw: no revision has it in its params "
     "files (did you mean synthesize.correlations.Smiling.skew?)"),
    (["--target", "Wavy_Hair"], "error: sweep: no usable experiment has test.Eyeglasses.DEO in "),
    (["--metric", "DOE"], "error: sweep: no usable experiment has test.Eyeglasses.DOE in "),
    (["--methods", "baseline", "fairbatch"],
     "error: sweep: method fairbatch: no usable experiment has test.Eyeglasses.DEO in "
     "metrics/evaluate/fairbatch/Smiling.json"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, args, message):
    out = tmp_path / "s"
    with pytest.raises(SystemExit) as exc:
        main(["--input", str(FIXTURE), "--out", str(out), *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing written


def test_cli_unreadable_input(tmp_path, capsys):
    bad = tmp_path / "exps.json"
    bad.write_text('{"workspace": {"baseline": {}}')
    with pytest.raises(SystemExit):
        main(["--input", str(bad), "--out", str(tmp_path / "s")])
    assert capsys.readouterr().err.startswith(f"error: sweep: {bad}: not JSON")


def test_old_dvc_format_is_rejected():
    with pytest.raises(DebiaslabError, match="format of DVC >= 3"):
        parse_exp_show({"workspace": {"baseline": {"data": {}}}})
