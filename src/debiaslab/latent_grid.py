"""The GAN chain's failure modes side by side: ``python -m debiaslab.paired grid``.

Issue 13's 2×2 is generator {renderer, DCGAN} × hyperplane labels {hallucinated, ground truth}.
Each cell is a set of paired-seed experiments (``NAME-seed<S>``, see :mod:`debiaslab.paired`); for
each, this module gathers per seed what the chain did on the way (the SVMs' held-out accuracy,
cos(w_t, w_g), how often the hallucinated target label is right, flipped/kept by the oracle and by
the truth) and what it achieved (Δ = augmented − baseline of DEO, EO gap, AP, BA and KL on the
balanced and the skewed test split). The tidy CSV (one row per variant, seed and quantity) is what
the report reads; :func:`grid_table` turns it into one column per variant (diagnostics: mean ± sd
over seeds; Δ: mean with its 95 % t-interval), in the markdown file and in the report alike.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from debiaslab.errors import DebiaslabError
from debiaslab.io import write_text
from debiaslab.paired import (
    Run,
    collect_runs,
    faces_family,
    file_data,
    interval_text,
    markdown,
    mean_sd,
    mean_sd_text,
    merge_previous,
    paired_deltas,
    previous_rows,
    read_previous,
    read_values,
    t_interval,
)
from debiaslab.stage_args import attribute, plain_name
from debiaslab.sweep import load_exp_show, lookup, skip_report

GRID_COLUMNS = ["variant", "generator", "labels", "seed", "experiment", "rev", "quantity", "value"]
DELTA_PREFIX = "Δ "
# (metric, split) pairs whose Δ the grid shows; BA is 0 on the balanced split by construction.
DELTA_METRICS = (("DEO", "balanced"), ("DEO", "test"), ("EO_gap", "balanced"), ("AP", "balanced"),
                 ("AP", "test"), ("BA", "test"), ("KL", "balanced"))
GRID_NOTE = ("One column per variant (experiments NAME-seed<S>). Diagnostics: mean ± sd over the seeds. "
             "Δ = augmented − baseline, both trained with the seed in the same experiment: mean Δ with "
             "its 95% t-interval over the seeds (df = n − 1). Truth rows exist for the renderer "
             "generator only; '-' where a variant has no value.")


@dataclass(frozen=True)
class GridValue:
    variant: str
    generator: str
    labels: str
    seed: int
    experiment: str
    rev: str
    quantity: str
    value: float


def diagnostics(*, target: str, protected: str) -> list[tuple[str, str, str]]:
    """(quantity, metric file, dotted path) of each diagnostic of the chain, in reading order."""
    latent, pairs = f"metrics/latent/{target}.json", f"metrics/pairs/{target}.json"
    labels = "metrics/hallucinate.json"
    return [(f"SVM held-out accuracy, {target}", latent, f"svm_heldout_accuracy.{target}"),
            (f"SVM held-out accuracy, {protected}", latent, f"svm_heldout_accuracy.{protected}"),
            ("cos(w_t, w_g)", latent, "cos_wt_wg"),
            (f"hallucinated {target} = oracle's", labels, f"{target}.oracle_agreement"),
            (f"hallucinated {target} = truth", labels, f"{target}.true_agreement"),
            (f"pairs: {protected} flipped (oracle)", pairs, f"oracle.flip.{protected}_flipped"),
            (f"pairs: {target} kept (oracle)", pairs, "oracle.flip.target_kept"),
            (f"pairs: {protected} flipped (truth)", pairs, f"true.flip.{protected}_flipped"),
            (f"pairs: {target} kept (truth)", pairs, "true.flip.target_kept")]


def _metric(run: Run, path: str, dotted: str):
    """The value at ``dotted`` in the run's metric file ``path``, or None where either is missing."""
    data, _ = file_data(run.data, path)
    found, value = lookup(data or {}, dotted)
    return value if found else None


def _setting(run: Run, target: str) -> tuple[str, str]:
    """Which generator made the run's pairs and which labels its hyperplanes were fitted on, as
    the stages recorded them ('?' for a run older than those fields)."""
    generator = _metric(run, f"metrics/pairs/{target}.json", "generator")
    labels = _metric(run, f"metrics/latent/{target}.json", "labels")
    return (generator if isinstance(generator, str) else "?", labels if isinstance(labels, str) else "?")


def grid_values(runs: Sequence[Run], *, target: str, protected: str) -> list[GridValue]:
    """Every diagnostic and Δ of every run that has it (a DCGAN run has no truth judge)."""
    settings = {r.experiment: _setting(r, target) for r in runs}
    out = []
    for run in runs:
        for quantity, path, dotted in diagnostics(target=target, protected=protected):
            value = _metric(run, path, dotted)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out.append(GridValue(run.variant, *settings[run.experiment], run.seed, run.experiment,
                                     run.rev, quantity, float(value)))
    family = faces_family(target=target, protected=protected)
    pairs = [("augmented", "baseline")]
    for metric, split in DELTA_METRICS:
        values, _ = read_values(runs, family=family, methods=["augmented", "baseline"], split=split,
                                pairs=pairs)
        for d in paired_deltas([v for v in values if v.metric == metric], pairs=pairs):
            out.append(GridValue(d.variant, *settings[d.experiment], d.seed, d.experiment, d.rev,
                                 f"{DELTA_PREFIX}{metric} ({split})", d.delta))
    return out


def grid_csv(values: Iterable[GridValue]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(GRID_COLUMNS)
    for v in values:
        w.writerow([v.variant, v.generator, v.labels, v.seed, v.experiment, v.rev, v.quantity,
                    f"{v.value:.10g}"])
    return buf.getvalue()


def _cell(quantity: str, xs: list[float]) -> str:
    if quantity.startswith(DELTA_PREFIX):
        return interval_text(t_interval(xs))
    return mean_sd_text(*mean_sd(xs))


def grid_table(values: Sequence[GridValue]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one column per variant (in order of appearance), one row per quantity."""
    variants = list(dict.fromkeys(v.variant for v in values))
    quantities = list(dict.fromkeys(v.quantity for v in values))
    cells: dict[tuple[str, str], list[float]] = {}
    seeds: dict[str, set[int]] = {}
    setting: dict[str, set[tuple[str, str]]] = {}
    for v in values:
        cells.setdefault((v.variant, v.quantity), []).append(v.value)
        seeds.setdefault(v.variant, set()).add(v.seed)
        setting.setdefault(v.variant, set()).add((v.generator, v.labels))
    rows = [["gan.source"] + [" / ".join(sorted({g for g, _ in setting[n]})) for n in variants],
            ["latent_edit.labels"] + [" / ".join(sorted({lab for _, lab in setting[n]})) for n in variants],
            ["seeds"] + [",".join(map(str, sorted(seeds[n]))) for n in variants]]
    for q in quantities:
        rows.append([q] + [_cell(q, cells[(n, q)]) if (n, q) in cells else "-" for n in variants])
    return ["quantity", *variants], rows



def read_grid_csv(text: str) -> list[GridValue]:
    """The rows of a grid CSV, each field checked; raises ValueError naming the line."""
    reader = csv.reader(io.StringIO(text))
    if (header := next(reader, [])) != GRID_COLUMNS:
        raise ValueError(f"expected the header {','.join(GRID_COLUMNS)}, got {','.join(header)[:80]!r}")
    values, seen = [], set()
    for row in reader:
        line = reader.line_num
        if len(row) != len(GRID_COLUMNS):
            raise ValueError(f"line {line}: expected {len(GRID_COLUMNS)} fields, got {len(row)}")
        variant, generator, labels, seed, experiment, rev, quantity, value = row
        if not (seed.isascii() and seed.isdigit()):
            raise ValueError(f"line {line}: seed: expected a non-negative integer, got {seed[:40]!r}")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ValueError(f"line {line}: value: expected a finite number, got {value[:40]!r}")
        if not variant or not quantity:
            raise ValueError(f"line {line}: variant and quantity must not be empty")
        if (variant, int(seed), quantity) in seen:
            raise ValueError(f"line {line}: a second row for variant {variant}, seed {seed}, {quantity}")
        seen.add((variant, int(seed), quantity))
        values.append(GridValue(variant, generator, labels, int(seed), experiment, rev, quantity, number))
    if not values:
        raise ValueError("no rows (expected one per variant, seed and quantity)")
    return values


def read_grid_file(path: str | Path) -> list[GridValue]:
    """A grid CSV's rows; one of another layout is a one-line DebiaslabError naming the file."""
    try:
        return read_grid_csv(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DebiaslabError(f"{path}: not a CSV (not UTF-8 text)") from None
    except (ValueError, csv.Error) as err:
        raise DebiaslabError(f"{path}: {err}") from None


def grid(args) -> None:
    """``paired grid``: the variants' diagnostics and Δ, written to OUT.csv and OUT.md."""
    names = [plain_name("--name", n) for n in args.name]
    if len(set(names)) != len(names):
        raise DebiaslabError("--name: a name is given twice")
    target = attribute("--target", args.target or "Smiling")
    protected = attribute("--protected", args.protected or "Eyeglasses")
    previous = previous_rows(read_previous(args.previous or [], read_grid_file), names=names)
    runs, skips = collect_runs(load_exp_show(args.input, None), names=names, seed_param="train.seed",
                               covered={v.variant for v in previous})
    values = merge_previous(grid_values(runs, target=target, protected=protected), previous, names=names,
                            paths=args.previous or [])
    header, rows = grid_table(values)
    md = markdown(header, rows)
    out = Path(args.out or "reports/paired/grid")
    write_text(out.with_name(out.name + ".csv"), grid_csv(values))
    write_text(out.with_name(out.name + ".md"),
               f"# The GAN chain, variant by variant: {', '.join(names)}\n\n{GRID_NOTE}\n\n{md}\n")
    if skips:
        print(skip_report(skips), file=sys.stderr)
    print(md)
    print(f"wrote {out}.csv and {out}.md")
