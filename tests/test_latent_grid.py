"""``python -m debiaslab.paired grid`` on real experiments, and its table in the report.

The fixture tests/fixtures/grid_exp_show.json is this repository's own ``dvc exp show --json -A``
(DVC 3.67, 2026-12-02), trimmed by :func:`trim_exp_show`: the experiments renderer-gt-seed0..4 and
dcgan-h-seed0 (successful) and the failed dcgan-h-seed1 with their commits, each keeping only the
params and metric files the grid reads; every other field is as DVC wrote it.
``python tests/test_latent_grid.py EXP_SHOW.json`` rewrites it from a fresh copy.
"""

import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from scipy import stats

from debiaslab.errors import DebiaslabError
from debiaslab.latent_grid import GRID_COLUMNS, grid_csv, grid_table, grid_values, read_grid_csv
from debiaslab.paired import collect_runs, main
from debiaslab.report import collect, paired_tables, render_markdown

FIXTURE = Path(__file__).parent / "fixtures" / "grid_exp_show.json"
KEEP_EXPERIMENTS = {f"renderer-gt-seed{s}" for s in range(5)} | {"dcgan-h-seed0", "dcgan-h-seed1"}
KEEP_METRICS = ("metrics/evaluate/baseline/Smiling.json", "metrics/evaluate/augmented/Smiling.json",
                "metrics/latent/Smiling.json", "metrics/pairs/Smiling.json", "metrics/hallucinate.json")
KEEP_PARAMS = ("train", "latents", "gan", "latent_edit")


def trim_exp_show(exps: list) -> list:
    """The commits that hold KEEP_EXPERIMENTS, with only those, their kept params and metrics."""
    def trim(node):
        data = node.get("data") or {}
        params = data.get("params", {}).get("params.yaml", {}).get("data", {})
        data["params"] = {"params.yaml": {"data": {k: params[k] for k in KEEP_PARAMS if k in params}}}
        data["metrics"] = {k: v for k, v in (data.get("metrics") or {}).items() if k in KEEP_METRICS}
        data["deps"], data["outs"] = {}, {}
        return node

    out = []
    for commit in exps:
        kept = [e for e in commit.get("experiments") or [] if e.get("name") in KEEP_EXPERIMENTS]
        if kept:
            for exp in kept:
                exp["revs"] = [trim(node) for node in exp["revs"]]
            out.append({**trim(commit), "experiments": kept})
    return out


@pytest.fixture(scope="module")
def exps():
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def values(exps):
    runs, _ = collect_runs(exps, names=["renderer-gt", "dcgan-h"], seed_param="train.seed")
    return grid_values(runs, target="Smiling", protected="Eyeglasses")


def _raw(exps, name, path, *keys):
    """A number as DVC recorded it in the fixture, read without the module under test."""
    for commit in exps:
        for exp in commit["experiments"]:
            if exp["name"] == name and exp["revs"][0]["data"]["metrics"].get(path):
                tree = exp["revs"][0]["data"]["metrics"][path]["data"]
                for key in keys:
                    tree = tree[key]
                return tree
    raise KeyError(name)


def test_diagnostics_are_mean_and_sd_of_the_recorded_numbers(exps, values):
    header, rows = grid_table(values)
    assert header == ["quantity", "renderer-gt", "dcgan-h"]
    by_quantity = {r[0]: r[1:] for r in rows}
    assert by_quantity["gan.source"] == ["renderer", "train"]
    assert by_quantity["latent_edit.labels"] == ["ground_truth", "hallucinated"]
    assert by_quantity["seeds"] == ["0,1,2,3,4", "0"]  # the failed dcgan-h-seed1 is skipped
    latent = "metrics/latent/Smiling.json"
    svm = [_raw(exps, f"renderer-gt-seed{s}", latent, "svm_heldout_accuracy", "Smiling") for s in range(5)]
    assert by_quantity["SVM held-out accuracy, Smiling"][0] == (
        f"{statistics.mean(svm):.4f} ± {statistics.stdev(svm):.4f}")
    cos0 = _raw(exps, "dcgan-h-seed0", "metrics/latent/Smiling.json", "cos_wt_wg")
    assert by_quantity["cos(w_t, w_g)"][1] == f"{cos0:.4f} ± n/a"
    # the truth judges only the renderer's images
    assert by_quantity["pairs: Smiling kept (truth)"][1] == "-"
    assert by_quantity["pairs: Smiling kept (truth)"][0].startswith("0.99")


def test_delta_rows_are_paired_t_intervals(exps, values):
    _, rows = grid_table(values)
    by_quantity = {r[0]: r[1:] for r in rows}
    deltas = []
    for s in range(5):
        name = f"renderer-gt-seed{s}"
        aug, base = (_raw(exps, name, f"metrics/evaluate/{m}/Smiling.json", "balanced", "Eyeglasses",
                          "DEO", "value") for m in ("augmented", "baseline"))
        deltas.append(aug - base)
    mean, sem = statistics.mean(deltas), stats.sem(deltas)
    lo, hi = stats.t.interval(0.95, len(deltas) - 1, loc=mean, scale=sem)
    assert by_quantity["Δ DEO (balanced)"][0] == f"{mean:+.4f} [{lo:+.4f}, {hi:+.4f}]"
    assert hi < 0  # the renderer ceiling: DEO falls with ground-truth hyperplanes
    assert by_quantity["Δ DEO (balanced)"][1].endswith("[n/a (1 seed)]")
    assert "Δ BA (balanced)" not in by_quantity  # 0 by construction there


def test_the_csv_round_trips_and_the_report_shows_the_same_table(tmp_path, values):
    path = tmp_path / "reports/paired/grid.csv"
    path.parent.mkdir(parents=True)
    path.write_text(grid_csv(values))
    assert read_grid_csv(path.read_text()) == [
        v.__class__(**{**v.__dict__, "value": float(f"{v.value:.10g}")}) for v in values]
    [table] = paired_tables(tmp_path / "reports")
    assert (table.header, table.rows) == grid_table(read_grid_csv(path.read_text()))
    assert "python -m debiaslab.paired grid" in table.note
    md = render_markdown(collect(tmp_path / "metrics", tmp_path / "reports"))
    assert "### grid: the GAN chain, variant by variant" in md


HEADER = ",".join(GRID_COLUMNS)
ROW = "renderer-gt,renderer,ground_truth,0,renderer-gt-seed0,abc,cos(w_t w_g),0.95"
MALFORMED = [
    (f"{HEADER}\n", "no rows (expected one per variant, seed and quantity)"),
    (f"{HEADER}\n{ROW},1\n", "line 2: expected 8 fields, got 9"),
    (f"{HEADER}\n{ROW.replace(',0,', ',-1,')}\n", "line 2: seed: expected a non-negative integer, got '-1'"),
    (f"{HEADER}\n{ROW.replace('0.95', 'inf')}\n", "line 2: value: expected a finite number, got 'inf'"),
    (f"{HEADER}\n{ROW}\n{ROW}\n", "line 3: a second row for variant renderer-gt, seed 0, cos(w_t w_g)"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED, ids=[m for _, m in MALFORMED])
def test_a_malformed_grid_csv_is_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "paired/grid.csv"
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(DebiaslabError) as err:
        paired_tables(tmp_path)
    assert str(err.value) == f"{path}: {message}"


def test_the_command_writes_csv_and_markdown(tmp_path, capsys):
    out = tmp_path / "grid"
    main(["grid", "--input", str(FIXTURE), "--name", "renderer-gt", "--name", "dcgan-h", "--out", str(out)])
    md = (tmp_path / "grid.md").read_text()
    assert "| quantity | renderer-gt | dcgan-h |" in md
    assert read_grid_csv((tmp_path / "grid.csv").read_text())
    assert "dcgan-h-seed1 (failed)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["grid", "--input", str(FIXTURE), "--name", "renderer-gt", "--name", "renderer-gt"])
    assert exit_.value.code != 0



def test_an_earlier_grids_rows_fill_the_columns_of_gone_experiments(tmp_path, capsys, values):
    """A variant whose experiments are gone (here: renderer-gt's rows renamed renderer-h) comes
    from its earlier CSV and reads exactly as it would live; a seed both live and earlier is refused."""
    earlier = tmp_path / "earlier.csv"
    renamed = [replace(v, variant="renderer-h") for v in values if v.variant == "renderer-gt"]
    earlier.write_text(grid_csv(renamed))
    out = tmp_path / "grid"
    main(["grid", "--input", str(FIXTURE), "--name", "renderer-gt", "--name", "renderer-h", "--out", str(out),
          "--previous", str(earlier)])
    header, *rows = [line.split(" | ") for line in (tmp_path / "grid.md").read_text().splitlines()
                     if line.startswith("| ")]
    assert header[1:] == ["renderer-gt", "renderer-h |"]
    assert all(row[1] == row[2].removesuffix(" |") for row in rows[1:])  # after the --- line
    assert len(read_grid_csv((tmp_path / "grid.csv").read_text())) == 2 * sum(
        v.variant == "renderer-gt" for v in values)
    live = tmp_path / "live.csv"
    live.write_text(grid_csv(values))
    with pytest.raises(SystemExit) as exit_:
        main(["grid", "--input", str(FIXTURE), "--name", "renderer-gt", "--out", str(tmp_path / "o"),
              "--previous", str(live)])
    assert exit_.value.code == 2
    assert ("renderer-gt seed 0 is also the live experiment renderer-gt-seed0"
            in capsys.readouterr().err)
    empty = tmp_path / "empty.csv"
    empty.write_text(",".join(GRID_COLUMNS) + "\n")
    for path, message in [(empty, f"{empty}: no rows (expected one per variant, seed and quantity)"),
                          (tmp_path / "nosuch.csv", f"--previous {tmp_path / 'nosuch.csv'}: No such file")]:
        with pytest.raises(SystemExit) as exit_:
            main(["grid", "--input", str(FIXTURE), "--name", "renderer-gt", "--out", str(tmp_path / "o"),
                  "--previous", str(path)])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and f"error: paired: {message}" in err and "Traceback" not in err
    assert not (tmp_path / "o.csv").exists()

if __name__ == "__main__":  # rewrite the fixture from a fresh `dvc exp show --json -A > EXP_SHOW.json`
    trimmed = trim_exp_show(json.loads(Path(sys.argv[1]).read_text()))
    FIXTURE.write_text(json.dumps(trimmed, indent=1) + "\n")
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")
