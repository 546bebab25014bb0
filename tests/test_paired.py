"""debiaslab.paired: queueing seeded experiments and the paired Δ table, without running DVC.

The fixture (tests/fixtures/paired_exp_show.json) is built by :func:`build_exp_show` from the nodes
of the DVC 3.x fixture tests/fixtures/exp_show.json (a commit, a successful, a queued and a failed
experiment), so it has exactly their layout; ``python tests/test_paired.py`` rewrites it. It holds:

- commit ``main`` (train.seed 0; test split only) with the experiments ``demo-seed0..4``
  (baseline, augmented and fairbatch files with ``test`` and ``balanced`` sections), ``demo-seed5``
  (failed), ``demo-seed6`` (queued), ``demo-seed7`` (train.seed 0: its name lies), ``alt-seed0..1``
  (no balanced split; alt-seed1 without fairbatch) and ``cd-seed0..2`` (Colored Digits files of
  severity 1.0);
- an older commit with an older run ``demo-seed3`` whose augmented result differs (superseded).
"""

import copy
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

from debiaslab import paired
from debiaslab.errors import DebiaslabError
from debiaslab.paired import (
    Delta,
    choose_split,
    collect_runs,
    digits_family,
    faces_family,
    main,
    paired_deltas,
    queue_commands,
    read_values,
    summarize,
    t_interval,
)

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE = FIXTURES / "paired_exp_show.json"
MAIN, OLD = "a" * 40, "b" * 40
FACE_METRICS = ("AP", "DEO", "EO_gap", "BA", "KL")
SEEDS = range(5)

# per seed 0..4: the baseline's test numbers, and Δ = method − baseline of each method
BASELINE = {"AP": [0.980, 0.981, 0.982, 0.983, 0.984], "DEO": [0.40, 0.41, 0.42, 0.43, 0.44],
            "EO_gap": [0.35] * 5, "BA": [0.03] * 5, "KL": [2.0, 2.1, 2.2, 2.3, 2.4]}
DELTAS = {
    "augmented": {"AP": [-0.002, -0.001, -0.003, -0.002, -0.002], "DEO": [-0.10, -0.12, -0.08, -0.11, -0.09],
                  "EO_gap": [-0.05, -0.06, -0.04, -0.05, -0.05], "BA": [0.0, -0.01, 0.01, 0.0, 0.005],
                  "KL": [-0.5, -0.4, -0.6, -0.5, -0.5]},
    "fairbatch": dict.fromkeys(FACE_METRICS, [0.02, -0.03, 0.01, -0.01, 0.0]),
}
# the balanced split: every number 0.05 less, the augmented ones 0.06 (so their Δ is 0.01 less)
BALANCED_SHIFT = {"baseline": -0.05, "augmented": -0.06, "fairbatch": -0.05}
# Colored Digits, seeds 0..2: (lff, lff_be) and (disent, disent_be) test numbers
DIGITS = {"lff": {"accuracy": [0.30, 0.32, 0.31], "conflicting_accuracy": [0.20, 0.22, 0.21],
                  "aligned_accuracy": [0.70, 0.71, 0.72]},
          "lff_be": {"accuracy": [0.35, 0.36, 0.37], "conflicting_accuracy": [0.30, 0.30, 0.33],
                     "aligned_accuracy": [0.69, 0.71, 0.70]},
          "disent": {"accuracy": [0.40, 0.41, 0.42], "conflicting_accuracy": [0.30, 0.31, 0.32],
                     "aligned_accuracy": [0.80, 0.80, 0.80]},
          "disent_be": {"accuracy": [0.41, 0.40, 0.42], "conflicting_accuracy": [0.33, 0.33, 0.33],
                        "aligned_accuracy": [0.79, 0.80, 0.81]}}


# ------------------------------------------------------------------------------------ fixture

def _interval(x):
    x = round(x, 6)
    return {"value": x, "median": x, "lo": round(x - 0.02, 6), "hi": round(x + 0.02, 6)}


def _section(numbers):
    return {"AP": _interval(numbers["AP"]), "accuracy": _interval(0.94),
            "Eyeglasses": {m: _interval(numbers[m]) for m in FACE_METRICS if m != "AP"}}


def _faces_file(numbers, balanced_shift=None):
    data = {"threshold": {"calibrated": 0.5, "f1": 0.6}, "val": {"AP": 0.99}, "test": _section(numbers)}
    if balanced_shift is not None:
        data["balanced"] = _section({m: v + balanced_shift for m, v in numbers.items()})
    return {"data": {**data, "n_test": 2000, "n_boot": 500}}


def _faces_numbers(method, seed, extra=0.0):
    base = {m: BASELINE[m][seed] for m in FACE_METRICS}
    if method == "baseline":
        return base
    return {m: base[m] + DELTAS[method][m][seed] + extra for m in FACE_METRICS}


def _faces_metrics(seed, methods=("baseline", "augmented", "fairbatch"), balanced=True, extra=0.0):
    return {f"metrics/evaluate/{m}/Smiling.json":
            _faces_file(_faces_numbers(m, seed, extra if m == "augmented" else 0.0),
                        BALANCED_SHIFT[m] if balanced else None) for m in methods}


def _digits_metrics(seed):
    return {f"metrics/debias/1.0/{m}.json": {"data": {
        "best_epoch": 20, "valid_accuracy": 0.4,
        "test": {k: v[seed] for k, v in numbers.items()}}} for m, numbers in DIGITS.items()}


def _params(node, train_seed, **extra):
    params = node["data"]["params"]["params.yaml"]["data"]
    params["train"]["seed"] = params["latents"]["seed"] = train_seed
    params.update(extra)


def _experiment(template, name, rev, timestamp, metrics, train_seed, **extra_params):
    exp = copy.deepcopy(template)
    exp["name"] = name
    exp["executor"]["local"]["task_id"] = rev
    node = exp["revs"][0]
    node.update(rev=rev, name=name)
    node["data"].update(rev=rev, timestamp=timestamp, metrics=metrics)
    _params(node, train_seed, **extra_params)
    return exp


def build_exp_show():
    """The paired fixture, from the nodes of the real DVC 3.x fixture."""
    real = json.loads((FIXTURES / "exp_show.json").read_text())
    workspace_t, commit_t = real[0], real[1]
    by_name = {e["name"]: e for e in commit_t["experiments"]}
    ok_t, queued_t, failed_t = by_name["seed1"], by_name["skew-0.8"], by_name["gan20"]

    def commit(rev, name, timestamp, metrics):
        node = copy.deepcopy({k: v for k, v in commit_t.items() if k != "experiments"})
        node.update(rev=rev, name=name)
        node["data"].update(rev=rev, timestamp=timestamp, metrics=metrics)
        return node

    workspace = copy.deepcopy(workspace_t)
    workspace["data"]["metrics"] = {}  # not read; metrics left out to keep the file small
    main_c = commit(MAIN, "main", "2026-02-01T10:00:00", _faces_metrics(0, balanced=False))
    exps = [_experiment(ok_t, f"demo-seed{s}", f"{s + 1}" * 40, f"2026-02-01T1{s + 1}:00:00",
                        _faces_metrics(s), s) for s in SEEDS]
    exps.append(_experiment(failed_t, "demo-seed5", "6" * 40, "2026-02-01T16:00:00", {}, 5))
    exps.append(_experiment(queued_t, "demo-seed6", "7" * 40, "2026-02-01T17:00:00", {}, 6))
    exps.append(_experiment(ok_t, "demo-seed7", "8" * 40, "2026-02-01T18:00:00", {}, 0))
    exps += [_experiment(ok_t, f"alt-seed{s}", f"9{s}" * 20, f"2026-02-02T1{s}:00:00",
                         _faces_metrics(s, ("baseline", "augmented", "fairbatch")[:3 - s], balanced=False),
                         s) for s in (0, 1)]
    exps += [_experiment(ok_t, f"cd-seed{s}", f"c{s}" * 20, f"2026-02-03T1{s}:00:00", _digits_metrics(s), 0,
                         debias_train={"epochs": 20, "seed": s}) for s in range(3)]
    main_c["experiments"] = exps
    old_c = commit(OLD, None, "2026-01-20T10:00:00", {})
    old_c["experiments"] = [_experiment(ok_t, "demo-seed3", "d" * 40, "2026-01-20T12:00:00",
                                        _faces_metrics(3, extra=0.4), 3)]
    return [workspace, main_c, old_c]


@pytest.fixture(scope="module")
def exps():
    return json.loads(FIXTURE.read_text())


def test_fixture_file_is_the_builders_output():
    assert json.loads(FIXTURE.read_text()) == build_exp_show(), "rewrite it: python tests/test_paired.py"
    assert FIXTURE.stat().st_size < 60_000


# ------------------------------------------------------------------------- experiments, values

def test_collect_runs_skips_unusable_and_keeps_newest(exps):
    runs, skips = collect_runs(exps, names=["demo"], seed_param="train.seed")
    assert [(r.experiment, r.seed) for r in runs] == [(f"demo-seed{s}", s) for s in SEEDS]
    assert next(r for r in runs if r.seed == 3).rev == "4" * 40  # the newer of the two demo-seed3
    why = {(s.experiment, s.rev[:1]): s.reason for s in skips}
    assert why == {("demo-seed5", "6"): "failed", ("demo-seed6", "7"): "queued",
                   ("demo-seed7", "8"): "train.seed is 0, not the seed 7 of its name",
                   ("demo-seed3", "d"): "superseded by the newer run 4444444"}
    assert all(s.method is None for s in skips)


def test_collect_runs_unknown_name_hints(exps):
    with pytest.raises(DebiaslabError, match=r"--name dem: no successful experiment named "
                                             r"dem-seed<N> \(did you mean demo\?\)"):
        collect_runs(exps, names=["dem"], seed_param="train.seed")
    with pytest.raises(DebiaslabError, match=r"named demo-seed<N>: 9 found, none usable: demo-seed0 \(latents"
                                             r"\.n is 20000, not the seed 0 of its name\), .* and 6 more$"):
        collect_runs(exps, names=["demo"], seed_param="latents.n")


@pytest.mark.parametrize(("names", "requested", "expected"), [
    (["demo"], None, ("balanced", "present in every used experiment (5)")),
    (["demo", "alt"], None, ("test", "balanced missing in 2 of 7 experiments")),
    (["demo"], "test", ("test", "as requested")),
])
def test_choose_split(exps, names, requested, expected):
    runs, _ = collect_runs(exps, names=names, seed_param="train.seed")
    methods = ["baseline", "augmented"]
    assert choose_split(runs, family=faces_family(), methods=methods, requested=requested) == expected


def test_choose_split_rejects_unknown_split(exps):
    runs, _ = collect_runs(exps, names=["cd"], seed_param="debias_train.seed")
    with pytest.raises(DebiaslabError, match="--split 'balanced': expected one of the splits of the digits"):
        choose_split(runs, family=digits_family(severity="1.0"), methods=["lff"], requested="balanced")
    assert choose_split(runs, family=digits_family(severity="1.0"), methods=["lff"])[0] == "test"


def _deltas(exps, names=("demo",), split="test", pairs=(("augmented", "baseline"),)):
    runs, _ = collect_runs(exps, names=list(names), seed_param="train.seed")
    methods = list(dict.fromkeys(m for p in pairs for m in p))
    values, skips = read_values(runs, family=faces_family(), methods=methods, split=split, pairs=pairs)
    return paired_deltas(values, pairs=pairs), skips


def _per_seed(deltas, method, metric, variant="demo"):
    return [d.delta for d in deltas if (d.variant, d.method, d.metric) == (variant, method, metric)]


@pytest.mark.parametrize(("split", "shift"), [("test", 0.0), ("balanced", -0.01)])
def test_paired_deltas_per_seed(exps, split, shift):
    deltas, skips = _deltas(exps, split=split, pairs=(("augmented", "baseline"), ("fairbatch", "baseline")))
    assert not skips
    for method in ("augmented", "fairbatch"):
        for metric in FACE_METRICS:
            expected = [d + (shift if method == "augmented" else 0.0) for d in DELTAS[method][metric]]
            assert _per_seed(deltas, method, metric) == pytest.approx(expected, abs=1e-9)
    d = next(d for d in deltas if (d.seed, d.method, d.metric) == (3, "augmented", "DEO"))
    # seed 3 from the newer run: 0.43 - 0.11 (the superseded run had 0.43 - 0.11 + 0.4)
    base = 0.43 - (0.05 if split == "balanced" else 0.0)
    assert (d.experiment, d.rev, d.reference) == ("demo-seed3", "4" * 40, "baseline")
    assert (d.method_value, d.reference_value) == pytest.approx((base - 0.11 + shift, base))


def test_paired_deltas_need_both_sides_in_the_same_experiment(exps):
    deltas, skips = _deltas(exps, names=("alt",), pairs=(("fairbatch", "baseline"),))
    assert {d.seed for d in deltas} == {0}  # alt-seed1 has no fairbatch file
    assert [(s.experiment, s.method, s.reason) for s in skips] == [
        ("alt-seed1", "fairbatch", "no metrics/evaluate/fairbatch/Smiling.json")]


def test_file_left_as_the_commits_is_skipped(exps):
    """A method stage outside the experiment's targets keeps the commit's file (its seed, not S)."""
    exps = copy.deepcopy(exps)
    path, reference = "metrics/evaluate/fairbatch/Smiling.json", "metrics/evaluate/baseline/Smiling.json"
    # seed 0 is the commit's own: where neither its method nor its reference reran, both files are
    # the commit's seed-0 run, and right
    for name, paths in (("demo-seed2", [path]), ("demo-seed0", [path, reference])):
        node = next(e for e in exps[1]["experiments"] if e["name"] == name)["revs"][0]
        for p in paths:
            node["data"]["metrics"][p] = copy.deepcopy(exps[1]["data"]["metrics"][p])
    deltas, skips = _deltas(exps, pairs=(("fairbatch", "baseline"),))
    assert {d.seed for d in deltas} == {0, 1, 3, 4}
    assert [(s.experiment, s.reason) for s in skips] == [("demo-seed2", f"{path} identical to its "
                                                          "baseline commit's: the stage did not run in "
                                                          "this experiment")]


def test_file_left_as_the_commits_at_the_commits_seed_is_skipped_when_its_reference_reran(exps):
    """Seed 0 with other settings (``-S synthesize...``): the baseline retrained, the fairbatch
    stage was not a target, so its file is the commit's run under the commit's settings."""
    exps = copy.deepcopy(exps)
    path = "metrics/evaluate/fairbatch/Smiling.json"
    node = next(e for e in exps[1]["experiments"] if e["name"] == "demo-seed0")["revs"][0]
    node["data"]["metrics"][path] = copy.deepcopy(exps[1]["data"]["metrics"][path])
    deltas, skips = _deltas(exps, pairs=(("fairbatch", "baseline"),))
    assert {d.seed for d in deltas} == {1, 2, 3, 4}
    assert [(s.experiment, s.method, s.reason) for s in skips] == [
        ("demo-seed0", "fairbatch", f"{path} identical to its baseline commit's while "
         "metrics/evaluate/baseline/Smiling.json changed: the stage did not run in this experiment")]


def test_missing_metric_is_reported(exps):
    exps = copy.deepcopy(exps)
    seed0 = next(e for e in exps[1]["experiments"] if e["name"] == "demo-seed0")["revs"][0]
    path = "metrics/evaluate/augmented/Smiling.json"
    del seed0["data"]["metrics"][path]["data"]["test"]["Eyeglasses"]["KL"]
    deltas, skips = _deltas(exps)
    assert len(_per_seed(deltas, "augmented", "KL")) == 4
    assert len(_per_seed(deltas, "augmented", "DEO")) == 5
    assert [s.reason for s in skips] == [f"{path}: no test.Eyeglasses.KL.value"]


# --------------------------------------------------------------------------------- statistics

def test_t_interval_by_hand_and_against_scipy():
    deltas = [-0.10, -0.12, -0.08, -0.11, -0.09]
    t = t_interval(deltas)
    sd = math.sqrt((0.0 + 0.02**2 + 0.02**2 + 0.01**2 + 0.01**2) / 4)  # about the mean -0.10
    half = 2.7764451051977987 * sd / math.sqrt(5)  # t_{0.975, 4} from a table; the same as below
    assert stats.t.ppf(0.975, 4) == pytest.approx(2.7764451051977987)
    assert (t.n, t.mean, t.sd) == (5, pytest.approx(-0.10), pytest.approx(sd))
    assert (t.lo, t.hi) == pytest.approx((-0.10 - half, -0.10 + half))
    assert (t.lo, t.hi) == pytest.approx(tuple(stats.ttest_1samp(deltas, 0.0).confidence_interval(0.95)))
    assert t.excludes_zero is True


def test_t_interval_other_confidence_and_zero_inside():
    deltas = [0.02, -0.03, 0.01, -0.01, 0.0]
    t = t_interval(deltas, confidence=0.9)
    assert (t.lo, t.hi) == pytest.approx(tuple(stats.ttest_1samp(deltas, 0.0).confidence_interval(0.9)))
    assert t.excludes_zero is False and t.confidence == 0.9


def test_t_interval_single_seed_is_undefined():
    t = t_interval([0.3])
    assert (t.n, t.mean, t.sd, t.lo, t.hi, t.excludes_zero) == (1, 0.3, None, None, None, None)
    with pytest.raises(ValueError):
        t_interval([])
    with pytest.raises(ValueError):
        t_interval([0.1, 0.2], confidence=95)


def test_summarize_means_over_the_paired_seeds():
    rows = [Delta("v", s, f"v-seed{s}", "r", "m", "b", "DEO", mv, rv, mv - rv)
            for s, mv, rv in [(1, 0.3, 0.5), (0, 0.2, 0.4), (2, 0.4, 0.6)]]
    rows.append(Delta("v", 0, "v-seed0", "r", "m", "b", "AP", 0.9, 0.95, 0.9 - 0.95))
    dep, ap = summarize(rows)
    assert (dep.metric, dep.seeds, dep.deltas) == ("DEO", (0, 1, 2), pytest.approx((-0.2, -0.2, -0.2)))
    assert (dep.reference_mean, dep.reference_sd) == pytest.approx((0.5, 0.1))
    assert (dep.method_mean, dep.method_sd) == pytest.approx((0.3, 0.1))
    assert (dep.delta.lo, dep.delta.hi) == pytest.approx((-0.2, -0.2))  # no spread: a point
    assert (ap.delta.n, ap.reference_sd, ap.delta.lo) == (1, None, None)


# ---------------------------------------------------------------------------------------- CLI

def test_cli_table_writes_csv_and_md(tmp_path, capsys):
    out = tmp_path / "paired" / "demo"
    main(["table", "--name", "demo", "--input", str(FIXTURE), "--out", str(out)])  # default pairs
    lines = (tmp_path / "paired" / "demo.csv").read_text().splitlines()
    assert lines[0] == ("variant,seed,experiment,rev,method,reference,split,metric,method_value,"
                        "reference_value,delta")
    assert len(lines) == 1 + 5 * 2 * 5  # seeds x pairs x metrics
    assert f"demo,3,demo-seed3,{'4' * 40},augmented,baseline,balanced,DEO,0.26,0.38,-0.12" in lines
    md = (tmp_path / "paired" / "demo.md").read_text()
    assert sorted(p.name for p in out.parent.iterdir()) == ["demo.csv", "demo.md"]  # no temporaries
    t = t_interval([d - 0.01 for d in DELTAS["augmented"]["DEO"]])
    row = (f"| augmented | baseline | DEO | 5 | 0.3700 ± 0.0158 | 0.2600 ± 0.0255 | "
           f"{t.mean:+.4f} [{t.lo:+.4f}, {t.hi:+.4f}] | yes | 0: -0.1100, 1: -0.1300, 2: -0.0900, "
           "3: -0.1200, 4: -0.1000 |")
    assert row in md.splitlines()
    assert any(line.startswith("| fairbatch | baseline | DEO | 5 |") and "| no |" in line
               for line in md.splitlines())
    assert "split balanced (present in every used experiment (5))" in md
    captured = capsys.readouterr()
    assert row in captured.out and "wrote" in captured.out
    assert "demo-seed5 (failed)" in captured.err and "demo-seed6 (queued)" in captured.err
    assert "demo-seed3 (superseded by the newer run 4444444)" in captured.err
    # a default pair without any experiment is left out with a note (a named one is an error, below)
    assert ("note: default pair drfairness:baseline left out: no experiment demo-seed<N> has both "
            "metrics/evaluate/drfairness/Smiling.json and metrics/evaluate/baseline/Smiling.json"
            ) in captured.err


def test_cli_variants_share_one_table(tmp_path, capsys):
    out = tmp_path / "both"
    main(["table", "--name", "demo", "--name", "alt", "--input", str(FIXTURE), "--out", str(out),
          "--pairs", "augmented:baseline,fairbatch:baseline"])
    md = out.with_suffix(".md").read_text().splitlines()
    assert md[4].startswith("| variant | method | reference | metric | n |")
    alt_fb = next(line for line in md if line.startswith("| alt | fairbatch | baseline | DEO |"))
    assert "| 1 | 0.4000 ± n/a | 0.4200 ± n/a | +0.0200 [n/a (1 seed)] | n/a | 0: +0.0200 |" in alt_fb
    assert any(line.startswith("| demo | augmented | baseline | DEO | 5 |") for line in md)
    assert "split test (balanced missing in 2 of 7 experiments)" in capsys.readouterr().out


def test_cli_split_test_on_request(tmp_path):
    main(["table", "--name", "demo", "--input", str(FIXTURE), "--out", str(tmp_path / "t"),
          "--split", "test", "--methods", "augmented"])
    rows = (tmp_path / "t.csv").read_text().splitlines()
    assert f"demo,3,demo-seed3,{'4' * 40},augmented,baseline,test,DEO,0.32,0.43,-0.11" in rows


def test_cli_digits_family(tmp_path, capsys):
    out = tmp_path / "cd"
    main(["table", "--name", "cd", "--input", str(FIXTURE), "--out", str(out), "--family", "digits",
          "--severity", "1"])  # written 1.0 in the paths, as dvc.yaml writes it
    rows = out.with_suffix(".csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 2 * 3
    assert f"cd,1,cd-seed1,{'c1' * 20},lff_be,lff,test,conflicting_accuracy,0.3,0.22,0.08" in rows
    md = out.with_suffix(".md").read_text()
    assert "family digits (severity 1.0), split test" in md
    t = t_interval([0.05, 0.04, 0.06])
    assert (f"| lff_be | lff | accuracy | 3 | 0.3100 ± 0.0100 | 0.3600 ± 0.0100 | "
            f"{t.mean:+.4f} [{t.lo:+.4f}, {t.hi:+.4f}] | yes |") in md
    assert "| disent_be | disent | accuracy | 3 |" in md
    main(["table", "--name", "cd", "--input", str(FIXTURE), "--out", str(out), "--family", "digits",
          "--severity", "1.0", "--methods", "lff_be,disent_be", "--baseline", "lff"])
    assert "| disent_be | lff | aligned_accuracy | 3 |" in out.with_suffix(".md").read_text()
    capsys.readouterr()


def test_cli_table_keeps_only_the_seeds_asked_for(tmp_path, capsys):
    out = tmp_path / "demo"
    main(["table", "--name", "demo", "--input", str(FIXTURE), "--out", str(out), "--seeds", "1", "3",
          "--pairs", "augmented:baseline"])
    rows = (tmp_path / "demo.csv").read_text().splitlines()[1:]
    assert sorted({int(r.split(",")[1]) for r in rows}) == [1, 3] and len(rows) == 2 * 5
    deo = [d - 0.01 for s, d in enumerate(DELTAS["augmented"]["DEO"]) if s in (1, 3)]
    t = t_interval(deo)
    assert f"{t.mean:+.4f} [{t.lo:+.4f}, {t.hi:+.4f}]" in (tmp_path / "demo.md").read_text()
    assert "demo-seed0 (not among --seeds)" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["--name", "demo", "--seeds", "9"], "--seeds 9: no successful experiment with those seeds"),
    (["--name", "../x"], "--name '../x': expected a plain name"),
    (["--name", "demo", "--name", "demo"], "--name: a name is given twice"),
    (["--name", "nosuch"], "--name nosuch: no successful experiment named nosuch-seed<N>; queue them with"),
    (["--name", "demo", "--split", "valid"], "--split 'valid': expected one of the splits of the faces "
                                             "family: balanced, test"),
    (["--name", "demo", "--family", "cifar"], "--family 'cifar': expected one of faces, digits"),
    (["--name", "cd", "--family", "digits"], "--severity: required with --family digits"),
    (["--name", "cd", "--family", "digits", "--severity", "high"], "--severity 'high': expected a number"),
    (["--name", "demo", "--severity", "1.0"], "--severity: only with --family digits"),
    (["--name", "demo", "--target", "Smilin"], "--target 'Smilin': unknown attribute"),
    (["--name", "demo", "--pairs", "augmented"], "--pairs 'augmented': expected method:reference"),
    (["--name", "demo", "--pairs", "a:b", "--methods", "c"], "--pairs: give either --pairs or"),
    (["--name", "demo", "--methods", "baseline"], "--methods: expected at least one method other than"),
    (["--name", "demo", "--confidence", "95"], "--confidence '95': expected a number between 0 and 1"),
    (["--name", "demo", "--methods", "drfairness"],
     "pair drfairness:baseline: no experiment demo-seed<N> has both "
     "metrics/evaluate/drfairness/Smiling.json"),
])
def test_cli_table_bad_input_is_one_line_exit_2(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        main(["table", "--input", str(FIXTURE), "--out", str(tmp_path / "o"), *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"error: paired: {message}" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
    assert not list(tmp_path.iterdir())  # nothing written



# ----------------------------------------------------------------------------- --previous

def _table(tmp_path, out, *args):
    main(["table", "--name", "demo", "--input", str(FIXTURE), "--out", str(tmp_path / out),
          "--pairs", "augmented:baseline", *args])
    return (tmp_path / f"{out}.csv").read_text(), (tmp_path / f"{out}.md").read_text()


def test_previous_rows_join_the_live_seeds_as_if_all_were_live(tmp_path, capsys):
    """Seeds 0-2 from an earlier table's CSV and 3-4 live give the table of all five live."""
    full_csv, full_md = _table(tmp_path, "full")
    _table(tmp_path, "early", "--seeds", "0", "1", "2")
    joined_csv, joined_md = _table(tmp_path, "joined", "--seeds", "3", "4",
                                   "--previous", str(tmp_path / "early.csv"))
    assert joined_csv == full_csv
    table_rows = [line for line in full_md.splitlines() if line.startswith("| augmented")]
    assert table_rows and all(row in joined_md.splitlines() for row in table_rows)
    # a variant with no live experiment left: the table comes from the earlier rows alone
    gone = tmp_path / "gone.csv"
    gone.write_text(full_csv.replace("demo,", "gone,"))
    main(["table", "--name", "gone", "--input", str(FIXTURE), "--out", str(tmp_path / "g"),
          "--previous", str(gone)])
    assert (tmp_path / "g.csv").read_text() == full_csv.replace("demo,", "gone,")
    assert f"of --previous {gone}" in (tmp_path / "g.md").read_text()
    capsys.readouterr()


HEADER = ("variant,seed,experiment,rev,method,reference,split,metric,method_value,reference_value,delta\n")
ROW = "demo,0,demo-seed0,abc,augmented,baseline,balanced,DEO,0.3,0.4,-0.1\n"


@pytest.mark.parametrize(("text", "message"), [
    # read with the report's reader (every layout error is tested in test_report.py): one line naming the file
    (HEADER + ROW.replace(",-0.1", ",-0.2"), "{path}: line 2: delta: -0.2 is not method_value − "
                                             "reference_value (-0.1)"),
    (HEADER + ROW + ROW.replace("balanced", "test").replace(",0,", ",9,"),
     "{path}: split: expected one split in a file, got 'balanced', 'test'"),
    (None, "--previous {path}: No such file or directory"),
])
def test_an_unreadable_previous_table_is_one_line_naming_the_file(tmp_path, capsys, text, message):
    path = tmp_path / "earlier.csv"
    if text is not None:
        path.write_text(text)
    with pytest.raises(SystemExit) as exc:
        _table(tmp_path, "o", "--seeds", "3", "--previous", str(path))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"error: paired: {message.format(path=path)}" in err and "Traceback" not in err
    assert not (tmp_path / "o.csv").exists()


def test_a_seed_both_live_and_earlier_or_of_another_split_is_refused(tmp_path, capsys):
    _table(tmp_path, "early", "--seeds", "0", "1")
    _table(tmp_path, "early_test", "--seeds", "0", "1", "--split", "test")
    for args, message in [
        ([], "demo seed 0 is also the live experiment demo-seed0; keep one of them (drop the experiment"),
        (["--seeds", "2"], None),  # fine: seeds 0-1 earlier, 2 live
    ]:
        if message is None:
            _table(tmp_path, "ok", *args, "--previous", str(tmp_path / "early.csv"))
            assert {line.split(",")[1] for line in (tmp_path / "ok.csv").read_text().splitlines()[1:]} == {
                "0", "1", "2"}
            continue
        with pytest.raises(SystemExit):
            _table(tmp_path, "o", *args, "--previous", str(tmp_path / "early.csv"))
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _table(tmp_path, "o", "--seeds", "3", "--previous", str(tmp_path / "early_test.csv"))
    assert ("its rows are of the test split, this table's is balanced") in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _table(tmp_path, "o", "--seeds", "3", "--previous", str(tmp_path / "early.csv"),
               "--previous", str(tmp_path / "early.csv"))
    assert "demo seed 0 is also in" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()

# -------------------------------------------------------------------------------------- queue

QUEUE = ["queue", "--name", "demo", "--seeds", "0", "1", "2", "3", "4"]
TARGETS = ["evaluate@baseline-Smiling", "evaluate@augmented-Smiling"]


def _expected_commands(extra=()):
    return [["dvc", "exp", "run", "--queue", "-n", f"demo-seed{s}", "-S", f"train.seed={s}",
             "-S", f"latents.seed={s}", *extra, *TARGETS] for s in SEEDS]


def test_queue_commands_are_argument_lists():
    assert queue_commands(name="demo", seeds=list(SEEDS), seed_params=["train.seed", "latents.seed"],
                          set_params=["train.epochs=20", "gan.source=renderer"], targets=TARGETS) == \
        _expected_commands(["-S", "train.epochs=20", "-S", "gan.source=renderer"])


@pytest.mark.parametrize("argv", [
    [*QUEUE, *TARGETS, "--dry-run"],           # the targets straight after the seeds
    [*QUEUE, "--dry-run", *TARGETS],
    ["queue", *TARGETS, *QUEUE[1:], "--dry-run"],
    ["queue", "--name", "demo", "--seeds", "0,1,2,3,4", "--dry-run", *TARGETS],
])
def test_queue_dry_run_prints_the_commands(capsys, argv):
    main(argv)
    assert capsys.readouterr().out.splitlines() == [" ".join(c) for c in _expected_commands()]


def test_queue_dry_run_with_run_and_options(capsys):
    main([*QUEUE, "--seed-params", "debias_train.seed", "-S", "colored_digits.n_train=30000",
          "--run", "--dry-run", "train_debias@lff_be-1.0"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("dvc exp run --queue -n demo-seed0 -S debias_train.seed=0 "
                        "-S colored_digits.n_train=30000 train_debias@lff_be-1.0")
    assert lines[-1] == "dvc queue start -j 1" and len(lines) == 6


def test_queue_runs_lists_without_a_shell(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(paired.subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    main([*QUEUE, "--run", *TARGETS])
    assert [c for c, _ in calls] == [[sys.executable, "-m", *c] for c in
                                     [*_expected_commands(), ["dvc", "queue", "start", "-j", "1"]]]
    assert all(kw == {"check": True} for _, kw in calls)
    assert "dvc queue status" in capsys.readouterr().out


def test_queue_reports_a_failed_dvc_command(monkeypatch, capsys):
    def fail(cmd, **kw):
        raise subprocess.CalledProcessError(1, cmd)

    monkeypatch.setattr(paired.subprocess, "run", fail)
    with pytest.raises(SystemExit) as exc:
        main([*QUEUE, *TARGETS])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith(
        "error: paired: `dvc exp run --queue -n demo-seed0 -S train.seed=0 -S latents.seed=0 "
        "evaluate@baseline-Smiling evaluate@augmented-Smiling` failed (exit 1)")


@pytest.mark.parametrize(("args", "message"), [
    (["--name", "../x", "--seeds", "0", "e"], "--name '../x': expected a plain name"),
    (["--name", "x;rm", "--seeds", "0", "e"], "--name 'x;rm': expected a plain name"),
    (["--name", "x", "--seeds", "0", "-1", "e"], "--seeds '-1': expected non-negative integers"),
    (["--name", "x", "--seeds", "0", "1.5", "e"], "--seeds '1.5': expected non-negative integers"),
    (["--name", "x", "--seeds", "0", "0", "e"], "--seeds: seed 0 is given twice"),
    (["--name", "x", "--seeds", "0", "-S", "train.lr=0.1;rm", "e"],
     "-S 'train.lr=0.1;rm': value '0.1;rm': expected a number or a plain name"),
    (["--name", "x", "--seeds", "0", "-S", "synthesize.grid=[0.5,1.0]", "e"],
     "lists like [0.5,1.0] are not accepted"),
    (["--name", "x", "--seeds", "0", "-S", "train.epochs", "e"], "-S 'train.epochs': expected key=value"),
    (["--name", "x", "--seeds", "0", "-S", "params.yaml:train.lr=1", "e"],
     "-S 'params.yaml:train.lr=1': key 'params.yaml:train.lr': expected a dotted params key"),
    (["--name", "x", "--seeds", "0", "-S", "train.seed=3", "e"],
     "-S train.seed: set per seed by --seed-params"),
    (["--name", "x", "--seeds", "0", "--seed-params", "train..seed", "e"],
     "--seed-params 'train..seed': expected a dotted params key"),
    (["--name", "x", "--seeds", "0", "evaluate@a;b"], "TARGET 'evaluate@a;b': expected a DVC stage name"),
    (["--name", "x", "--seeds", "0", "../dvc.yaml"], "TARGET '../dvc.yaml': expected a DVC stage name"),
    (["--name", "x", "--seeds", "0"], "TARGET: expected at least one DVC stage"),
])
def test_queue_bad_input_is_one_line_exit_2(monkeypatch, capsys, args, message):
    monkeypatch.setattr(paired.subprocess, "run", lambda *a, **k: pytest.fail("ran a command"))
    with pytest.raises(SystemExit) as exc:
        main(["queue", "--dry-run", *args])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: paired: ") and message in captured.err and not captured.out
    assert len(captured.err.strip().splitlines()) == 1


if __name__ == "__main__":  # rewrite the fixture after changing the builder
    text = json.dumps(build_exp_show(), indent=1)
    # one line per {value, median, lo, hi} and per dict of plain numbers: under 60 KB, still readable
    text = re.sub(r"\{\n\s+([^{}\[\]]*?)\n\s*\}", lambda m: "{" + re.sub(r"\n\s*", " ", m[1]) + "}", text)
    FIXTURE.write_text(text + "\n")
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")
