"""``python -m debiaslab.sweep``: a fairness metric against one swept parameter, over DVC experiments.

Reads ``dvc exp show --json -A`` (every commit, the workspace and the experiments of each; or a saved
copy with ``--input``), takes one param (default ``synthesize.correlations.Smiling.skew``) and one
metric per method (default DEO of ``Eyeglasses`` for target ``Smiling``, from
``metrics/evaluate/METHOD/TARGET.json``), and writes

- ``OUT.csv``: the tidy table, one row per (revision, method), with a ``status`` column
  (``used``, ``duplicate`` or ``superseded``; only ``used`` rows enter the summary);
- ``OUT.png``: the metric against the param, one line per method; error bars are ±1 std over
  seeds (``train.seed``) where n > 1, else the 95 % bootstrap interval stored in the metrics file.

Rows are read only when they can be trusted: experiments that are queued, running or failed are
skipped (a running experiment reports the files of its temporary copy, partly its baseline's), as
are revisions without the metric and experiments whose metric is bit-identical to their baseline
commit's although the param or seed differ (the stage did not run in that experiment). Several
usable rows for the same (param value, seed, method) are one result, not replicates: the newest is
used, identical ones are marked ``duplicate`` (the workspace and its HEAD commit, or unchanged
commits) and different older ones ``superseded`` (results of older code or other settings).

The parsing, de-duplication and aggregation are pure functions of the JSON, tested on a fixture.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import io
import json
import math
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from debiaslab.errors import DebiaslabError, stage_main
from debiaslab.io import save_figure, write_text
from debiaslab.summary import table

DEFAULT_PARAM = "synthesize.correlations.Smiling.skew"
SEED_PARAM = "train.seed"
WORKSPACE = "workspace"
CSV_COLUMNS = ["experiment", "rev", "baseline", "timestamp", "param", "param_value", "seed", "method",
               "metric", "value", "lo", "hi", "status", "note"]


@dataclass(frozen=True)
class Row:
    """One metric of one method in one revision (commit, workspace or experiment)."""

    experiment: str       # experiment name; the branch name or short SHA for a commit; "workspace"
    rev: str              # full SHA, or "workspace"
    baseline: str         # the commit an experiment was run from (itself for a commit)
    timestamp: str | None
    order: int            # position in the exp-show output (newest commits first)
    param_value: Any
    seed: Any
    method: str
    value: float
    lo: float | None
    hi: float | None
    status: str = "used"  # used | duplicate | superseded
    note: str = ""


@dataclass(frozen=True)
class Skip:
    """A revision (and method, when only one method's metric is unusable) left out, and why."""

    experiment: str
    rev: str
    method: str | None
    reason: str


@dataclass(frozen=True)
class Point:
    """The aggregate of the used rows of one (param value, method)."""

    param_value: Any
    method: str
    n: int
    seeds: tuple
    mean: float
    std: float | None  # sample std (ddof=1) over seeds; None when n == 1
    lo: float | None   # the bootstrap interval of the single run when n == 1, else None
    hi: float | None

    @property
    def err(self) -> tuple[float, float]:
        """Error bar below and above the mean: ±std over seeds, else the bootstrap interval."""
        if self.n > 1:
            return self.std or 0.0, self.std or 0.0
        if self.lo is None or self.hi is None:
            return 0.0, 0.0
        return max(self.mean - self.lo, 0.0), max(self.hi - self.mean, 0.0)


# ---------------------------------------------------------------------------------------- parsing

def lookup(tree: Any, dotted: str) -> tuple[bool, Any]:
    node = tree
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


def read_param(data: dict, dotted: str) -> tuple[bool, Any]:
    """A dotted param from any params file of one revision (params.yaml first)."""
    files = data.get("params") or {}
    for name in sorted(files, key=lambda f: f != "params.yaml"):
        found, value = lookup((files[name] or {}).get("data") or {}, dotted)
        if found:
            return True, value
    return False, None


def _flat_keys(tree: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _flat_keys(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix


def metric_file(method: str, target: str) -> str:
    return f"metrics/evaluate/{method}/{target}.json"


def _metric(data: dict, method: str, target: str, protected: str, metric: str
            ) -> tuple[tuple[float, float | None, float | None] | None, str]:
    """(value, lo, hi) of ``test.PROTECTED.METRIC`` in the method's file, or None and why not."""
    path = metric_file(method, target)
    entry = (data.get("metrics") or {}).get(path)
    if not entry:  # not a metric of this revision's dvc.yaml
        return None, f"no {path}"
    if entry.get("error") or "data" not in entry:
        kind = (entry.get("error") or {}).get("type") or "unreadable"
        return None, f"no {path}" if kind == "FileNotFoundError" else f"{path}: {kind}"
    found, m = lookup(entry["data"], f"test.{protected}.{metric}")
    if not found:
        return None, f"{path}: no test.{protected}.{metric}"
    if isinstance(m, dict):
        value, lo, hi = m.get("value"), m.get("lo"), m.get("hi")
    else:
        value, lo, hi = m, None, None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return None, f"{path}: test.{protected}.{metric} is not a number"
    return (float(value), None if lo is None else float(lo), None if hi is None else float(hi)), ""


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def revisions(exps: Any) -> Iterator[tuple[dict, dict | None, str | None, str]]:
    """(node, baseline node or None, state, name) for the workspace, every commit, every experiment."""
    if not isinstance(exps, list):
        raise DebiaslabError("exp show JSON: expected a list of revisions (the format of DVC >= 3), "
                             f"got {type(exps).__name__}")
    for node in exps:
        if not isinstance(node, dict) or "rev" not in node:
            raise DebiaslabError("exp show JSON: every entry needs a 'rev' (the format of DVC >= 3)")
        rev = node["rev"]
        name = node.get("name") or (WORKSPACE if rev == WORKSPACE else rev[:7])
        yield node, None, None, name
        for exp in node.get("experiments") or []:
            revs = exp.get("revs") or []
            if not revs:
                continue
            head = revs[0]  # the experiment's result; later revs are intermediate commits
            executor = exp.get("executor") or {}
            state = executor.get("state") or ("failed" if head.get("error") else "success")
            yield head, node, state, exp.get("name") or head.get("name") or head["rev"][:7]


def parse_exp_show(exps: Any, *, param: str = DEFAULT_PARAM, methods: Sequence[str] = ("baseline",),
                   target: str = "Smiling", protected: str = "Eyeglasses", metric: str = "DEO",
                   seed_param: str = SEED_PARAM) -> tuple[list[Row], list[Skip]]:
    """The tidy rows of ``dvc exp show --json`` output, and what was skipped and why.

    Raises DebiaslabError when no revision has ``param`` or no usable revision has the metric.
    """
    rows: list[Row] = []
    skips: list[Skip] = []
    param_seen = False
    all_keys: set[str] = set()
    for order, (node, parent, state, name) in enumerate(revisions(exps)):
        rev = node["rev"]
        data = node.get("data") or {}
        for f in (data.get("params") or {}).values():
            all_keys.update(_flat_keys((f or {}).get("data") or {}))
        found, value = read_param(data, param)
        param_seen = param_seen or found
        if state not in (None, "success"):
            skips.append(Skip(name, rev, None, state))
            continue
        if node.get("error"):
            err = node["error"]
            skips.append(Skip(name, rev, None, f"error: {err.get('msg') if isinstance(err, dict) else err}"))
            continue
        if not found:
            skips.append(Skip(name, rev, None, f"no param {param}"))
            continue
        value = _hashable(value)
        seed = _hashable(read_param(data, seed_param)[1])
        baseline = parent["rev"] if parent else rev
        for method in methods:
            m, why = _metric(data, method, target, protected, metric)
            if m is None:
                skips.append(Skip(name, rev, method, why))
                continue
            if parent is not None:
                base_m, _ = _metric(parent.get("data") or {}, method, target, protected, metric)
                pdata = parent.get("data") or {}
                same_setting = (_hashable(read_param(pdata, param)[1]) == value
                                and _hashable(read_param(pdata, seed_param)[1]) == seed)
                if base_m == m and not same_setting:
                    skips.append(Skip(name, rev, method, f"{metric} identical to its baseline commit "
                                      f"{baseline[:7]}: the stage did not run in this experiment"))
                    continue
            rows.append(Row(name, rev, baseline, data.get("timestamp"), order, value, seed, method, *m))
    if not param_seen:
        close = difflib.get_close_matches(param, sorted(all_keys), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise DebiaslabError(f"unknown param {param}: no revision has it in its params files{hint}")
    if not rows:
        files = ", ".join(metric_file(m, target) for m in methods)
        raise DebiaslabError(f"no usable experiment has test.{protected}.{metric} in {files} "
                             f"({len(skips)} revisions or metrics skipped)")
    return rows, skips


# ------------------------------------------------------------------------------ dedup, aggregation

def recency(row: Row) -> tuple:
    """Sort key, newest first: the workspace, then by timestamp, then by position in the output."""
    ts = "9999" if row.rev == WORKSPACE else (row.timestamp or "")
    return (ts, -row.order)


def deduplicate(rows: Iterable[Row]) -> list[Row]:
    """Mark all but one row per (param value, seed, method): ``duplicate`` when its numbers equal
    the used row's, ``superseded`` when they differ (an older result of the same setting)."""
    cells: dict[tuple, list[Row]] = {}
    for row in rows:
        cells.setdefault((row.param_value, row.seed, row.method), []).append(row)
    out = []
    for cell in cells.values():
        cell = sorted(cell, key=recency, reverse=True)
        numbers = (cell[0].value, cell[0].lo, cell[0].hi)
        same = [r for r in cell if (r.value, r.lo, r.hi) == numbers]
        # identical results: prefer a committed revision over the workspace that reproduces it
        kept = next((r for r in same if r.rev != WORKSPACE), same[0])
        for row in cell:
            if row is kept:
                out.append(replace(row, status="used", note=""))
            elif (row.value, row.lo, row.hi) == numbers:
                out.append(replace(row, status="duplicate", note=f"same as {kept.experiment}"))
            else:
                out.append(replace(row, status="superseded", note=f"older than {kept.experiment}"))
    return sorted(out, key=lambda r: r.order)


def _sort_key(value: Any) -> tuple:
    return (0, value, "") if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else (1, 0, str(value))


def aggregate(rows: Iterable[Row], methods: Sequence[str] | None = None) -> list[Point]:
    """Per (param value, method) over the ``used`` rows: mean, sample std and n over seeds; for
    n == 1 the run's own bootstrap interval instead of a std."""
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        if row.status == "used":
            groups.setdefault((row.param_value, row.method), []).append(row)
    order = list(methods or [])
    points = []
    for (value, method), group in groups.items():
        xs = [r.value for r in group]
        n = len(xs)
        mean = sum(xs) / n
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else None
        lo, hi = (group[0].lo, group[0].hi) if n == 1 else (None, None)
        seeds = tuple(sorted((r.seed for r in group), key=_sort_key))
        points.append(Point(value, method, n, seeds, mean, std, lo, hi))
    return sorted(points, key=lambda p: (_sort_key(p.param_value),
                                         order.index(p.method) if p.method in order else len(order),
                                         p.method))


# ------------------------------------------------------------------------------------- outputs

def _num(x: Any, digits: int = 4) -> str:
    return "" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def rows_csv(rows: Iterable[Row], param: str, metric_name: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow([r.experiment, r.rev, r.baseline, r.timestamp or "", param, r.param_value,
                    "" if r.seed is None else r.seed, r.method, metric_name,
                    _num(r.value, 6), _num(r.lo, 6), _num(r.hi, 6), r.status, r.note])
    return buf.getvalue()


def summary_table(points: Sequence[Point], param: str, metric: str) -> str:
    rows = []
    for p in points:
        rows.append([str(p.param_value), p.method, str(p.n), ",".join(map(str, p.seeds)),
                     f"{p.mean:.3f}", "-" if p.std is None else f"{p.std:.3f}",
                     "-" if p.lo is None else f"[{p.lo:.3f}, {p.hi:.3f}]",
                     "± std" if p.n > 1 else "bootstrap 95%"])
    return table([param.rsplit(".", 1)[-1], "method", "n", "seeds", metric, "std", "95% CI (n=1)",
                  "error bar"], rows)


def _axis_label(param: str) -> str:
    parts = param.split(".")
    if len(parts) == 4 and parts[:2] == ["synthesize", "correlations"] and parts[3] == "skew":
        return f"training-set skew of {parts[2]}: P(g=1 | t=1) = P(g=0 | t=0)\n({param})"
    return param


def plot_sweep(points: Sequence[Point], *, param: str, target: str, protected: str, metric: str,
               methods: Sequence[str]):
    """The metric against the param, one line per method, error bars and n annotated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = sorted({p.param_value for p in points}, key=_sort_key)
    numeric = all(_sort_key(v)[0] == 0 for v in values)
    xpos = {v: (float(v) if numeric else i) for i, v in enumerate(values)}
    span = (max(xpos.values()) - min(xpos.values())) or 1.0
    present = [m for m in methods if any(p.method == m for p in points)]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for k, method in enumerate(present):
        pts = [p for p in points if p.method == method]
        dodge = (k - (len(present) - 1) / 2) * 0.012 * span  # keep the bars of methods apart
        x = [xpos[p.param_value] + dodge for p in pts]
        y = [p.mean for p in pts]
        err = [[p.err[0] for p in pts], [p.err[1] for p in pts]]
        bars = ax.errorbar(x, y, yerr=err, fmt="-o", capsize=3, ms=5, label=method)
        colour = bars[0].get_color()
        side = -1 if k % 2 == 0 else 1  # labels of neighbouring methods on opposite sides
        for xi, p in zip(x, pts, strict=True):
            ax.annotate(f"n={p.n}", (xi, p.mean), textcoords="offset points", xytext=(7 * side, 0),
                        ha="right" if side < 0 else "left", va="center", fontsize=7, color=colour)
    ax.margins(x=0.1)  # room for the n labels beside the outermost points
    if not numeric:
        ax.set_xticks(list(xpos.values()), [str(v) for v in values])
    ax.set_xlabel(_axis_label(param))
    ax.set_ylabel(f"{metric} of {target} classifier w.r.t. {protected} (test)")
    ax.set_title(f"{metric}({target} | {protected}) against {param.rsplit('.', 1)[-1]}")
    ax.grid(alpha=0.3)
    ax.legend(title="method", fontsize=8)
    fig.text(0.01, 0.01, "error bars: ±1 std over seeds where n > 1, else the 95% bootstrap interval",
             fontsize=7, color="0.35")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def load_exp_show(path: str | None, revs: Sequence[str] | None) -> Any:
    """A saved ``dvc exp show --json`` file, or a fresh one (all commits unless ``revs``)."""
    if path:
        try:
            return json.loads(Path(path).read_text())
        except OSError as err:
            raise DebiaslabError(f"{path}: {err.strerror or err}") from None
        except json.JSONDecodeError as err:
            raise DebiaslabError(f"{path}: not JSON ({err.msg}, line {err.lineno})") from None
    cmd = [sys.executable, "-m", "dvc", "exp", "show", "--json"]
    cmd += [a for r in revs for a in ("--rev", r)] if revs else ["-A"]
    print(f"sweep: running {' '.join(cmd[2:])} ...", file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise DebiaslabError(f"dvc exp show failed: {last}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as err:
        raise DebiaslabError(f"dvc exp show printed no JSON ({err.msg})") from None


def skip_report(skips: Sequence[Skip]) -> str:
    """One line: each named experiment and why it was (partly) skipped; commits only counted."""
    by_exp: dict[tuple[str, str], list[Skip]] = {}
    for s in skips:
        by_exp.setdefault((s.experiment, s.rev), []).append(s)
    parts, commits = [], 0
    for (name, rev), group in by_exp.items():
        if rev == WORKSPACE or name == rev[:7]:
            commits += 1
            continue
        missing = [s.method for s in group if s.method and s.reason.startswith("no metrics/")]
        other = [f"{s.method}: {s.reason}" if s.method else s.reason
                 for s in group if not (s.method and s.reason.startswith("no metrics/"))]
        if missing:
            other.append("no " + "/".join(missing) + " metric")
        parts.append(f"{name} ({'; '.join(other)})")
    if commits:
        parts.append(f"{commits} other commit(s) lacking the param or some metric")
    return "skipped: " + ", ".join(parts)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m debiaslab.sweep",
        description="A fairness metric against one swept param over this repo's DVC experiments: "
                    "writes OUT.csv (tidy table) and OUT.png, prints the summary.")
    ap.add_argument("--param", default=DEFAULT_PARAM, help="dotted param swept (default: %(default)s)")
    ap.add_argument("--target", default="Smiling")
    ap.add_argument("--protected", default="Eyeglasses")
    ap.add_argument("--metric", default="DEO", help="a key of test.PROTECTED in the evaluate metrics")
    ap.add_argument("--methods", nargs="+", default=["baseline", "augmented"],
                    help="methods (metrics/evaluate/METHOD/); space- or comma-separated")
    ap.add_argument("--out", default="reports/sweeps/skew_sweep",
                    help="output path without suffix: writes OUT.csv and OUT.png (default: %(default)s)")
    ap.add_argument("--input", help="a saved `dvc exp show --json` file instead of running DVC")
    ap.add_argument("--rev", action="append",
                    help="baseline commit(s) to read with their experiments (default: all commits)")
    return ap.parse_args(argv)


@stage_main("sweep")
def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    methods = [m for arg in args.methods for m in arg.split(",") if m]
    exps = load_exp_show(args.input, args.rev)
    rows, skips = parse_exp_show(exps, param=args.param, methods=methods, target=args.target,
                                 protected=args.protected, metric=args.metric)
    rows = deduplicate(rows)
    points = aggregate(rows, methods)
    missing = [m for m in methods if not any(p.method == m for p in points)]
    if missing:
        raise DebiaslabError(f"method {missing[0]}: no usable experiment has test.{args.protected}."
                             f"{args.metric} in {metric_file(missing[0], args.target)}")
    out = Path(args.out)
    csv_path, png_path = out.with_name(out.name + ".csv"), out.with_name(out.name + ".png")
    metric_name = f"{args.target}/{args.protected}/{args.metric}"
    write_text(csv_path, rows_csv(rows, args.param, metric_name))
    save_figure(plot_sweep(points, param=args.param, target=args.target, protected=args.protected,
                           metric=args.metric, methods=methods), png_path, dpi=120)
    if skips:
        print(skip_report(skips), file=sys.stderr)
    dropped = [r for r in rows if r.status != "used"]
    if dropped:
        print(f"not counted: {sum(r.status == 'duplicate' for r in dropped)} duplicate and "
              f"{sum(r.status == 'superseded' for r in dropped)} superseded row(s) (see the CSV)",
              file=sys.stderr)
    print(f"{args.metric}({args.target} | {args.protected}) per {args.param} and method "
          f"({sum(r.status == 'used' for r in rows)} runs)")
    print(summary_table(points, args.param, args.metric))
    print(f"wrote {out}.csv and {out}.png")


if __name__ == "__main__":
    main()
