"""``python -m debiaslab.paired``: does a method work? A paired comparison over seeds.

One run of one seed says little: a method can beat the baseline by chance. The comparison that
shows an effect trains the baseline and the method with the *same* seed in the same DVC
experiment, takes per seed Δ = method − reference, and reports the mean Δ with a 95 % t-interval
over seeds (df = n − 1); an interval that excludes 0 is the evidence. Two subcommands:

- ``queue`` queues one experiment per seed, ``NAME-seed<S>``, each with every seed param set to S
  (``dvc exp run --queue -n NAME-seedS -S train.seed=S -S latents.seed=S ... TARGET...``); with
  ``--run`` it starts the queue. The targets must include the reference's stage as well as the
  method's (``evaluate@baseline-Smiling evaluate@augmented-Smiling``): both are trained per seed.
  Inputs are checked before anything is queued; commands are argument lists, never a shell line.
- ``table`` reads ``dvc exp show --json -A`` (or a saved copy), takes the successful experiments
  named ``NAME-seed<S>`` (queued, running and failed ones are skipped, as are runs whose seed param
  is not S; of re-runs of the same name the newest counts, like :mod:`debiaslab.sweep`), reads
  each method's metric file *in the same experiment* and writes ``OUT.csv`` (tidy: one row per
  variant, seed, pair and metric) and ``OUT.md`` (one row per variant, pair and metric: n,
  reference and method mean ± sd, mean Δ [t-interval], whether it excludes 0), and prints the table.
  Several ``--name`` are variants in one table (e.g. generator × label source).

A *family* is where the numbers live: a metric-file pattern and a list of (label, dotted path)
metrics. ``faces`` reads ``metrics/evaluate/METHOD/TARGET.json`` (AP and the fairness gaps of
PROTECTED, from the ``balanced`` test split when every experiment has it, else ``test``);
``digits`` reads the Colored Digits files ``metrics/debias/SEVERITY/METHOD.json`` of BiasEnsemble.

The walk over exp show's JSON and the recency rule are :mod:`debiaslab.sweep`'s; the statistics
(:func:`paired_deltas`, :func:`t_interval`, :func:`summarize`) are pure functions over rows.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import io
import math
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scipy import stats

from debiaslab.errors import DebiaslabError, stage_main
from debiaslab.io import write_text
from debiaslab.report import read_paired_csv
from debiaslab.stage_args import PLAIN_NAME, PLAIN_NAME_RULE, attribute, choice, plain_name
from debiaslab.sweep import Skip, load_exp_show, lookup, read_param, recency, revisions, skip_report

SEED_PARAMS = ("train.seed", "latents.seed")
# A params.yaml key as `dvc exp run -S` takes it: dotted identifiers, no file prefix, no globs.
PARAM_KEY = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
# A DVC stage name (``evaluate@augmented-Smiling``); starting with a letter, it is never an option.
STAGE_TARGET = re.compile(r"[A-Za-z_][A-Za-z0-9_.@-]{0,199}")
SEED_WORD = re.compile(r"[-+0-9.,]+")  # what `--seeds` holds, so the stage names after it are not seeds
CSV_COLUMNS = ["variant", "seed", "experiment", "rev", "method", "reference", "split", "metric",
               "method_value", "reference_value", "delta"]


# ------------------------------------------------------------------------------------- queue

def experiment_name(name: str, seed: int) -> str:
    return f"{name}-seed{seed}"


def parse_seeds(words: Iterable[str]) -> list[int]:
    """Distinct non-negative integers from words like ``0 1 2`` or ``0,1,2``."""
    seeds: list[int] = []
    for word in (w for arg in words for w in arg.split(",") if w):
        if not word.isdigit():
            raise DebiaslabError(f"--seeds {word!r}: expected non-negative integers, e.g. --seeds 0 1 2 3 4")
        seed = int(word)
        if seed in seeds:
            raise DebiaslabError(f"--seeds: seed {seed} is given twice")
        seeds.append(seed)
    if not seeds:
        raise DebiaslabError("--seeds: expected at least one seed, e.g. --seeds 0 1 2 3 4")
    return seeds


def param_key(what: str, key: str) -> str:
    if not PARAM_KEY.fullmatch(key):
        raise DebiaslabError(f"{what} {key!r}: expected a dotted params key like train.seed "
                             "(letters, digits, _ and single dots)")
    return key


def parse_seed_params(text: str) -> list[str]:
    keys = [param_key("--seed-params", k.strip()) for k in text.split(",")]
    if len(set(keys)) != len(keys):
        raise DebiaslabError(f"--seed-params {text!r}: a key is given twice")
    return keys


def parse_set_param(text: str) -> tuple[str, str]:
    """``key=value`` of ``-S``: a dotted key and a plain name or a number."""
    key, sep, value = text.partition("=")
    if not sep:
        raise DebiaslabError(f"-S {text!r}: expected key=value, e.g. -S train.epochs=20")
    param_key(f"-S {text!r}: key", key)
    if not (PLAIN_NAME.fullmatch(value) or NUMBER.fullmatch(value)):
        raise DebiaslabError(f"-S {text!r}: value {value!r}: expected a number or a plain name "
                             f"({PLAIN_NAME_RULE}); lists like [0.5,1.0] are not accepted: set them "
                             "in params.yaml or a profile")
    return key, value


def stage_target(text: str) -> str:
    if not STAGE_TARGET.fullmatch(text):
        raise DebiaslabError(f"TARGET {text!r}: expected a DVC stage name like evaluate@augmented-Smiling "
                             "(letters, digits and _ - @ ., starting with a letter or _)")
    return text


def exp_run_commands(*, name: str, seeds: Sequence[int], seed_params: Sequence[str],
                     set_params: Sequence[str] = (), targets: Sequence[str] = (),
                     options: Sequence[str] = ()) -> list[list[str]]:
    """One ``dvc exp run OPTIONS -n NAME-seedS -S P=S ... TARGET...`` argument list per seed,
    every input checked first; ``options`` say how DVC runs it (``--queue``, ``--temp``)."""
    plain_name("--name", name)
    for target in targets:
        stage_target(target)
    for key in seed_params:
        param_key("--seed-params", key)
    fixed = [parse_set_param(s) for s in set_params]
    for key, _ in fixed:
        if key in seed_params:
            raise DebiaslabError(f"-S {key}: set per seed by --seed-params, not fixed with -S")
    commands = []
    for seed in seeds:
        cmd = ["dvc", "exp", "run", *options, "-n", experiment_name(name, seed)]
        cmd += [w for key in seed_params for w in ("-S", f"{key}={seed}")]
        cmd += [w for key, value in fixed for w in ("-S", f"{key}={value}")]
        commands.append([*cmd, *targets])
    return commands


def queue_commands(*, name: str, seeds: Sequence[int], seed_params: Sequence[str],
                   set_params: Sequence[str] = (), targets: Sequence[str]) -> list[list[str]]:
    """One ``dvc exp run --queue`` argument list per seed; the targets are required, as the
    reference's stage must rerun with each seed as well as the method's."""
    if not targets:
        raise DebiaslabError("TARGET: expected at least one DVC stage, e.g. evaluate@augmented-Smiling")
    return exp_run_commands(name=name, seeds=seeds, seed_params=seed_params, set_params=set_params,
                            targets=targets, options=["--queue"])


def _dvc(cmd: Sequence[str]) -> None:
    """Run a ``dvc ...`` list with this interpreter's DVC (the venv's, even off PATH)."""
    try:
        subprocess.run([sys.executable, "-m", *cmd], check=True)
    except subprocess.CalledProcessError as err:
        raise DebiaslabError(f"`{shlex.join(cmd)}` failed (exit {err.returncode}); see DVC's message "
                             "above") from None


def split_seed_words(seed_words: list[str], targets: list[str]) -> tuple[list[str], list[str]]:
    """``--seeds 0 1 2 evaluate@x`` gives argparse one list: the stage names after the seeds are
    the targets (a stage name starts with a letter, a seed never does)."""
    k = next((i for i, w in enumerate(seed_words) if not SEED_WORD.fullmatch(w)), len(seed_words))
    return seed_words[:k], seed_words[k:] + targets


def queue(args: argparse.Namespace) -> None:
    seed_words, targets = split_seed_words(args.seeds, args.targets)
    seeds = parse_seeds(seed_words)
    commands = queue_commands(name=args.name, seeds=seeds, seed_params=parse_seed_params(args.seed_params),
                              set_params=args.set_params or [], targets=targets)
    if len(seeds) < 5:
        print(f"note: {len(seeds)} seed(s): with fewer than 5 the t-interval is wide", file=sys.stderr)
    start = ["dvc", "queue", "start", "-j", "1"]
    if args.dry_run:
        for cmd in [*commands, *([start] if args.run else [])]:
            print(shlex.join(cmd))
        return
    for cmd in commands:
        _dvc(cmd)
    print(f"queued {len(commands)} experiments: "
          + ", ".join(experiment_name(args.name, s) for s in seeds))
    if args.run:
        _dvc(start)
        print("started the queue (one worker): watch it with `dvc queue status`, "
              "read a run's log with `dvc queue logs NAME-seedS`")
    else:
        print("run them with `dvc queue start -j 1`; watch with `dvc queue status`")
    print(f"then: python -m debiaslab.paired table --name {args.name}")


# ------------------------------------------------------------------------------------ families

@dataclass(frozen=True)
class Family:
    """Where one kind of experiment keeps its numbers."""

    name: str
    context: str                            # what the numbers are of, for the table's caption
    file_pattern: str                       # metric file, with {method}
    metrics: tuple[tuple[str, str], ...]    # (label, dotted path in the file, with {split})
    splits: tuple[str, ...]                 # sections {split} may be, the preferred first
    seed_param: str                         # the param whose value must be the seed of the name
    default_methods: tuple[str, ...]
    default_reference: str
    default_pairs: tuple[tuple[str, str], ...]

    def file(self, method: str) -> str:
        return self.file_pattern.format(method=method)


FACE_METHODS = ("augmented", "fairbatch", "drfairness")


def faces_family(*, target: str = "Smiling", protected: str = "Eyeglasses") -> Family:
    metrics = [("AP", "{split}.AP.value")]
    metrics += [(m, f"{{split}}.{protected}.{m}.value") for m in ("DEO", "EO_gap", "BA", "KL")]
    return Family("faces", f"{target} | {protected}", f"metrics/evaluate/{{method}}/{target}.json",
                  tuple(metrics),
                  ("balanced", "test"), "train.seed", FACE_METHODS, "baseline",
                  tuple((m, "baseline") for m in FACE_METHODS))


def digits_family(*, severity: str) -> Family:
    metrics = tuple((m, f"{{split}}.{m}") for m in ("accuracy", "conflicting_accuracy", "aligned_accuracy"))
    return Family("digits", f"severity {severity}", f"metrics/debias/{severity}/{{method}}.json",
                  metrics, ("test",),
                  "debias_train.seed", ("lff_be", "disent_be"), "erm",
                  (("lff_be", "lff"), ("disent_be", "disent")))


# --------------------------------------------------------------------------------- experiments

@dataclass(frozen=True, eq=False)
class Run:
    """One successful experiment ``VARIANT-seedS``; rev, timestamp and order as sweep's Row has
    them, so that :func:`debiaslab.sweep.recency` orders runs like sweep orders rows."""

    variant: str
    seed: int
    experiment: str
    rev: str
    timestamp: str | None
    order: int
    data: dict            # the experiment's `data` (params, metrics)
    parent: dict | None   # its baseline commit's `data`
    parent_seed: Any      # the seed param in its baseline commit (None where it has none)


@dataclass(frozen=True)
class Value:
    variant: str
    seed: int
    experiment: str
    rev: str
    method: str
    metric: str
    value: float


@dataclass(frozen=True)
class Delta:
    """One seed's paired difference: method and reference from the same experiment."""

    variant: str
    seed: int
    experiment: str
    rev: str
    method: str
    reference: str
    metric: str
    method_value: float
    reference_value: float
    delta: float


def _seed_skip(data: dict, seed: int, seed_param: str) -> str:
    """Why the experiment's seed param disagrees with the seed of its name, or ""."""
    found, value = read_param(data, seed_param)
    if not found:
        return f"no param {seed_param}"
    if isinstance(value, bool) or value != seed:
        return f"{seed_param} is {value!r}, not the seed {seed} of its name"
    return ""


def collect_runs(exps: Any, *, names: Sequence[str], seed_param: str, covered: Collection[str] = ()
                 ) -> tuple[list[Run], list[Skip]]:
    """The usable experiments ``NAME-seedS`` of each name, newest of re-runs, and the skipped.
    Every name needs one, except those ``covered`` by an earlier table (``--previous``)."""
    pattern = re.compile(rf"({'|'.join(map(re.escape, names))})-seed(\d+)")
    runs: list[Run] = []
    skips: list[Skip] = []
    others: set[str] = set()
    for order, (node, parent, state, name) in enumerate(revisions(exps)):
        match = pattern.fullmatch(name) if parent is not None else None
        if not match:
            if parent is not None:
                others.add(re.sub(r"-seed\d+$", "", name))
            continue
        variant, seed, data = match[1], int(match[2]), node.get("data") or {}
        if state != "success" or node.get("error"):
            err = node.get("error")
            msg = err.get("msg") if isinstance(err, dict) else err
            skips.append(Skip(name, node["rev"], None, state if state != "success" else f"error: {msg}"))
        elif why := _seed_skip(data, seed, seed_param):
            skips.append(Skip(name, node["rev"], None, why))
        else:
            pdata = parent.get("data") or {}
            runs.append(Run(variant, seed, name, node["rev"], data.get("timestamp"), order, data, pdata,
                            read_param(pdata, seed_param)[1]))
    runs, superseded = _newest(runs)
    _require_each_name([n for n in names if n not in covered], runs, skips + superseded, others)
    return sorted(runs, key=lambda r: (names.index(r.variant), r.seed)), skips + superseded


def _newest(runs: list[Run]) -> tuple[list[Run], list[Skip]]:
    """One run per (variant, seed): re-runs of a name are older code or settings, not replicates."""
    groups: dict[tuple[str, int], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.variant, run.seed), []).append(run)
    kept, skips = [], []
    for group in groups.values():
        newest, *older = sorted(group, key=recency, reverse=True)
        kept.append(newest)
        skips += [Skip(r.experiment, r.rev, None, f"superseded by the newer run {newest.rev[:7]}")
                  for r in older]
    return kept, skips


def _require_each_name(names: Sequence[str], runs: list[Run], skips: list[Skip], others: set[str]) -> None:
    for name in names:
        if any(r.variant == name for r in runs):
            continue
        tried = [f"{s.experiment} ({s.reason})" for s in skips if s.experiment.startswith(f"{name}-seed")]
        if tried:
            more = f" and {len(tried) - 3} more" if len(tried) > 3 else ""
            hint = f": {len(tried)} found, none usable: {', '.join(tried[:3])}{more}"
        else:
            close = difflib.get_close_matches(name, sorted(others), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else (
                f"; queue them with: python -m debiaslab.paired queue --name {name} --seeds 0 1 2 3 4 "
                "TARGET...")
        raise DebiaslabError(f"--name {name}: no successful experiment named {name}-seed<N>{hint}")


def file_data(data: dict, path: str) -> tuple[dict | None, str]:
    """The parsed metric file of one revision, or None and why not."""
    entry = (data.get("metrics") or {}).get(path)
    if not entry:
        return None, f"no {path}"
    if entry.get("error") or not isinstance(entry.get("data"), dict):
        kind = (entry.get("error") or {}).get("type") or "unreadable"
        return None, f"no {path}" if kind == "FileNotFoundError" else f"{path}: {kind}"
    return entry["data"], ""


def choose_split(runs: Sequence[Run], *, family: Family, methods: Sequence[str],
                 requested: str | None = None) -> tuple[str, str]:
    """The split to read and why: as requested, else the preferred one where every metric file of
    every run has it (the balanced test split), else the family's last (``test``)."""
    if requested:
        choice("--split", requested, family.splits, f"the splits of the {family.name} family")
        return requested, "as requested"
    if len(family.splits) == 1:
        return family.splits[0], f"the only split of the {family.name} family"
    preferred, fallback = family.splits[0], family.splits[-1]
    files = [(r, file_data(r.data, family.file(m))[0]) for r in runs for m in methods]
    files = [(r, f) for r, f in files if f is not None]
    lacking = {r.experiment for r, f in files if preferred not in f}
    if files and not lacking:
        return preferred, f"present in every used experiment ({len(runs)})"
    return fallback, f"{preferred} missing in {len(lacking)} of {len(runs)} experiments"


def _number(tree: dict, dotted: str) -> tuple[float | None, str]:
    """The finite number at a dotted path, or None and why not."""
    found, value = lookup(tree, dotted)
    if not found:
        return None, f"no {dotted}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None, f"{dotted} is not a number"
    return float(value), ""


def read_values(runs: Sequence[Run], *, family: Family, methods: Sequence[str], split: str,
                pairs: Sequence[tuple[str, str]] = ()) -> tuple[list[Value], list[Skip]]:
    """Every metric of every method in every run, and what could not be read and why. ``pairs``
    (method, reference) let a method's file be recognised as stale by its reference's."""
    values: list[Value] = []
    skips: list[Skip] = []
    references = {m: [family.file(r) for mm, r in pairs if mm == m] for m in methods}
    for run in runs:
        for method in methods:
            path = family.file(method)
            tree, why = file_data(run.data, path)
            if tree is None:
                skips.append(Skip(run.experiment, run.rev, method, why))
                continue
            if why := _stale(run, path, tree, references[method]):
                skips.append(Skip(run.experiment, run.rev, method, why))
                continue
            for label, dotted in family.metrics:
                key = dotted.format(split=split)
                value, why = _number(tree, key)
                if value is None:
                    skips.append(Skip(run.experiment, run.rev, method, f"{path}: {why}"))
                else:
                    values.append(Value(run.variant, run.seed, run.experiment, run.rev, method, label, value))
    return values, skips


def _stale(run: Run, path: str, tree: dict, reference_paths: Sequence[str] = ()) -> str:
    """Whether a file identical to its baseline commit's was not rewritten by this experiment (its
    stage was not among the targets), so it holds the commit's run, not this experiment's: so when
    the seed differs, and also at the commit's own seed when the method's reference changed in this
    experiment (other settings, e.g. ``-S synthesize...``: a reference retrained while the method
    was not)."""
    if run.parent is None or file_data(run.parent, path)[0] != tree:
        return ""
    if run.parent_seed != run.seed:
        return f"{path} identical to its baseline commit's: the stage did not run in this experiment"
    changed = [r for r in reference_paths
               if file_data(run.data, r)[0] not in (None, file_data(run.parent, r)[0])]
    if changed:
        return (f"{path} identical to its baseline commit's while {changed[0]} changed: the stage did "
                "not run in this experiment")
    return ""


# ---------------------------------------------------------------------------------- statistics

@dataclass(frozen=True)
class TInterval:
    """Mean of n numbers with its t-interval; sd, lo and hi are None for n < 2 (undefined)."""

    n: int
    mean: float
    sd: float | None
    lo: float | None
    hi: float | None
    confidence: float

    @property
    def excludes_zero(self) -> bool | None:
        return None if self.lo is None else (self.lo > 0 or self.hi < 0)


def mean_sd(xs: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof = 1; None for one number)."""
    n = len(xs)
    mean = sum(xs) / n
    return mean, math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else None


def t_interval(deltas: Sequence[float], *, confidence: float = 0.95) -> TInterval:
    """mean ± t_{(1+c)/2, n-1} · sd / √n over the seeds' paired differences."""
    if not deltas:
        raise ValueError("t_interval needs at least one number")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence}: expected a number in (0, 1)")
    n = len(deltas)
    mean, sd = mean_sd(deltas)
    if sd is None:
        return TInterval(1, mean, None, None, None, confidence)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n)
    return TInterval(n, mean, sd, mean - half, mean + half, confidence)


def paired_deltas(values: Iterable[Value], *, pairs: Sequence[tuple[str, str]]) -> list[Delta]:
    """Δ = method − reference per (variant, seed, metric), both values from the same experiment;
    a seed lacking either side has no Δ."""
    values = list(values)
    index = {(v.variant, v.seed, v.method, v.metric): v for v in values}
    cells = dict.fromkeys((v.variant, v.seed) for v in values)
    metrics = list(dict.fromkeys(v.metric for v in values))
    out = []
    for variant, seed in cells:
        for method, reference in pairs:
            for metric in metrics:
                m = index.get((variant, seed, method, metric))
                r = index.get((variant, seed, reference, metric))
                if m is not None and r is not None:
                    out.append(Delta(variant, seed, m.experiment, m.rev, method, reference, metric,
                                     m.value, r.value, m.value - r.value))
    return out


@dataclass(frozen=True)
class Summary:
    """One (variant, method, reference, metric) over its seeds."""

    variant: str
    method: str
    reference: str
    metric: str
    seeds: tuple[int, ...]
    deltas: tuple[float, ...]
    reference_mean: float
    reference_sd: float | None
    method_mean: float
    method_sd: float | None
    delta: TInterval


def summarize(deltas: Iterable[Delta], *, confidence: float = 0.95) -> list[Summary]:
    """Per (variant, method, reference, metric), in order of appearance: the reference's and the
    method's mean ± sd over the paired seeds and the t-interval of their Δ."""
    groups: dict[tuple[str, str, str, str], list[Delta]] = {}
    for d in deltas:
        groups.setdefault((d.variant, d.method, d.reference, d.metric), []).append(d)
    out = []
    for (variant, method, reference, metric), group in groups.items():
        group = sorted(group, key=lambda d: d.seed)
        out.append(Summary(variant, method, reference, metric, tuple(d.seed for d in group),
                           tuple(d.delta for d in group), *mean_sd([d.reference_value for d in group]),
                           *mean_sd([d.method_value for d in group]),
                           t_interval([d.delta for d in group], confidence=confidence)))
    return out


# ------------------------------------------------------------------------------------- outputs

def mean_sd_text(mean: float, sd: float | None) -> str:
    return f"{mean:.4f} ± {'n/a' if sd is None else f'{sd:.4f}'}"


def interval_text(t: TInterval) -> str:
    if t.lo is None:
        return f"{t.mean:+.4f} [n/a ({t.n} seed)]"
    return f"{t.mean:+.4f} [{t.lo:+.4f}, {t.hi:+.4f}]"


def markdown_table(summaries: Sequence[Summary], *, with_variant: bool = False) -> str:
    """One row per (variant,) method, reference and metric."""
    pct = f"{round(summaries[0].delta.confidence * 100, 1):g}" if summaries else "95"
    header = ["method", "reference", "metric", "n", "reference mean ± sd", "method mean ± sd",
              f"mean Δ [{pct}% t-interval]", "excludes 0", "Δ per seed"]
    rows = []
    for s in summaries:
        excludes = {None: "n/a", True: "yes", False: "no"}[s.delta.excludes_zero]
        per_seed = ", ".join(f"{seed}: {d:+.4f}" for seed, d in zip(s.seeds, s.deltas, strict=True))
        rows.append([s.method, s.reference, s.metric, str(s.delta.n),
                     mean_sd_text(s.reference_mean, s.reference_sd),
                     mean_sd_text(s.method_mean, s.method_sd), interval_text(s.delta), excludes, per_seed])
        if with_variant:
            rows[-1].insert(0, s.variant)
    if with_variant:
        header.insert(0, "variant")
    return markdown(header, rows)


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def deltas_csv(deltas: Iterable[Delta], *, split: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for d in deltas:
        w.writerow([d.variant, d.seed, d.experiment, d.rev, d.method, d.reference, split, d.metric,
                    f"{d.method_value:.10g}", f"{d.reference_value:.10g}", f"{d.delta:.10g}"])
    return buf.getvalue()


def read_previous(paths: Sequence[str], read: Callable[[str], Any]) -> list[tuple[str, Any]]:
    """(path, read(path)) of each ``--previous`` file: an earlier table's CSV. ``read`` reports a
    file of another layout in one line naming it; one that cannot be opened is reported here."""
    tables = []
    for path in paths:
        try:
            tables.append((path, read(path)))
        except OSError as err:
            raise DebiaslabError(f"--previous {path}: {err.strerror or err}") from None
    return tables


def previous_rows(tables: Sequence[tuple[str, list]], *, names: Sequence[str]) -> list:
    """The rows of NAMES in the (path, rows) of earlier tables (``--previous``): experiments that
    are no longer in this workspace, e.g. removed or run in another clone. A (variant, seed) in two
    of the files (or one file given twice) is an error."""
    rows, source = [], {}
    for number, (path, found) in enumerate(tables):
        for row in (r for r in found if r.variant in names):
            if source.setdefault((row.variant, row.seed), number) != number:
                raise DebiaslabError(f"--previous {path}: {row.variant} seed {row.seed} is also in "
                                     f"--previous {tables[source[(row.variant, row.seed)]][0]}")
            rows.append(row)
    return rows


def merge_previous(live: list, previous: list, *, names: Sequence[str], paths: Sequence[str]) -> list:
    """Live rows and earlier ones, by variant (in ``names`` order) and seed. One seed, one run: a
    (variant, seed) both live and in an earlier table is an error, not a silent choice."""
    clash = sorted({(r.variant, r.seed) for r in live} & {(r.variant, r.seed) for r in previous})
    if clash:
        variant, seed = clash[0]
        raise DebiaslabError(f"--previous {' '.join(paths)}: {variant} seed {seed} is also the live "
                             f"experiment {experiment_name(variant, seed)}; keep one of them (drop the "
                             "experiment with `dvc exp remove` or table's --seeds, or its rows from the CSV)")
    return sorted(live + previous, key=lambda r: (names.index(r.variant), r.seed))


# ---------------------------------------------------------------------------------------- table

def parse_pairs(text: str) -> list[tuple[str, str]]:
    """``method:reference,...``"""
    pairs = []
    for item in (i.strip() for i in text.split(",") if i.strip()):
        method, sep, reference = item.partition(":")
        if not sep:
            raise DebiaslabError(f"--pairs {item!r}: expected method:reference, e.g. lff_be:lff")
        pairs.append((plain_name("--pairs: method", method), plain_name("--pairs: reference", reference)))
    if not pairs:
        raise DebiaslabError("--pairs: expected method:reference[,method:reference...]")
    return pairs


def _family(args: argparse.Namespace) -> Family:
    choice("--family", args.family, ("faces", "digits"))
    if args.family == "digits":
        if args.target or args.protected:
            raise DebiaslabError("--target/--protected: the digits family has neither; give --severity")
        if args.severity is None:
            raise DebiaslabError("--severity: required with --family digits (a colored_digits.severities "
                                 "value, e.g. 1.0)")
        try:
            severity = float(args.severity)
        except ValueError:
            raise DebiaslabError(f"--severity {args.severity!r}: expected a number, e.g. 1.0") from None
        if not math.isfinite(severity) or severity < 0:
            raise DebiaslabError(f"--severity {args.severity!r}: expected a non-negative number, e.g. 1.0")
        return digits_family(severity=str(severity))  # as dvc.yaml writes it in paths: 1 -> 1.0
    if args.severity is not None:
        raise DebiaslabError("--severity: only with --family digits")
    return faces_family(target=attribute("--target", args.target or "Smiling"),
                        protected=attribute("--protected", args.protected or "Eyeglasses"))


def _pairs(args: argparse.Namespace, family: Family) -> tuple[list[tuple[str, str]], bool]:
    """The (method, reference) pairs, and whether the user named them (else the family's default)."""
    if args.pairs:
        if args.methods or args.baseline:
            raise DebiaslabError("--pairs: give either --pairs or --methods/--baseline, not both")
        return parse_pairs(args.pairs), True
    if not (args.methods or args.baseline):
        return list(family.default_pairs), False
    reference = plain_name("--baseline", args.baseline or family.default_reference)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods \
        else family.default_methods
    pairs = [(plain_name("--methods", m), reference) for m in methods if m != reference]
    if not pairs:
        raise DebiaslabError(f"--methods: expected at least one method other than the baseline {reference}")
    return pairs, True


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:
        raise DebiaslabError(f"--confidence {text!r}: expected a number between 0 and 1, e.g. 0.95")
    return value


def _pairs_found(pairs: Sequence[tuple[str, str]], deltas: Sequence[Delta], *, named: bool,
                 family: Family, names: Sequence[str], split: str) -> list[tuple[str, str]]:
    """The pairs with a Δ in some variant (a variant may lack a method: the 2x2 of generators).
    A pair the user named must have one; default pairs without any are left out, with a note."""
    found = [p for p in pairs if any((d.method, d.reference) == p for d in deltas)]
    for method, reference in (p for p in pairs if p not in found):
        why = (f"no experiment {'/'.join(names)}-seed<N> has both {family.file(method)} and "
               f"{family.file(reference)} with the {split} metrics")
        if named or not found:
            raise DebiaslabError(f"pair {method}:{reference}: {why}")
        print(f"note: default pair {method}:{reference} left out: {why}", file=sys.stderr)
    return found


def _settings(family: Family, split: str, why: str, confidence: float) -> str:
    return (f"family {family.name} ({family.context}), split {split} ({why}); Δ = method − reference "
            f"per seed from the same experiment, {confidence * 100:g}% t-interval over seeds (df = n − 1)")


def table(args: argparse.Namespace) -> None:
    names = [plain_name("--name", n) for n in args.name]
    if len(set(names)) != len(names):
        raise DebiaslabError("--name: a name is given twice")
    family = _family(args)
    pairs, named = _pairs(args, family)
    confidence = _confidence(args.confidence)
    if args.split:
        choice("--split", args.split, family.splits, f"the splits of the {family.name} family")
    seed_param = param_key("--seed-param", args.seed_param or family.seed_param)
    methods = list(dict.fromkeys(m for pair in pairs for m in pair))

    seeds = set(parse_seeds(args.seeds)) if args.seeds else None
    earlier = [(path, *table) for path, table in read_previous(args.previous or [], read_paired_csv)]
    previous = previous_rows([(path, [d for d in deltas if (d.method, d.reference) in pairs])
                              for path, _, deltas in earlier], names=names)

    exps = load_exp_show(args.input, None)
    runs, skips = collect_runs(exps, names=names, seed_param=seed_param,
                               covered={d.variant for d in previous})
    if seeds is not None:  # e.g. leave out a seed whose method stage did not run in its experiment
        skips += [Skip(r.experiment, r.rev, None, "not among --seeds") for r in runs if r.seed not in seeds]
        runs = [r for r in runs if r.seed in seeds]
        if not runs and not previous:
            raise DebiaslabError(f"--seeds {' '.join(args.seeds)}: no successful experiment with those seeds")
    if runs:
        split, why = choose_split(runs, family=family, methods=methods, requested=args.split)
    else:  # every name covered by earlier tables
        split, why = args.split or earlier[0][1], f"of --previous {earlier[0][0]}"
    for path, earlier_split, _ in earlier:
        if earlier_split != split:
            raise DebiaslabError(f"--previous {path}: its rows are of the {earlier_split} split, this "
                                 f"table's is {split} ({why}); give --split and a table of that split")
    values, value_skips = read_values(runs, family=family, methods=methods, split=split, pairs=pairs)
    deltas = merge_previous(paired_deltas(values, pairs=pairs), previous, names=names,
                            paths=[path for path, _, _ in earlier])
    _pairs_found(pairs, deltas, named=named, family=family, names=names, split=split)
    summaries = summarize(deltas, confidence=confidence)

    out = Path(args.out or f"reports/paired/{'+'.join(names)}")
    settings = _settings(family, split, why, confidence)
    md = markdown_table(summaries, with_variant=len(names) > 1)
    write_text(out.with_name(out.name + ".csv"), deltas_csv(deltas, split=split))
    write_text(out.with_name(out.name + ".md"),
               f"# Paired comparison: {', '.join(names)}\n\n{settings}\n\n{md}\n")
    if skips or value_skips:
        print(skip_report(skips + value_skips), file=sys.stderr)
    print(settings)
    print(md)
    print(f"wrote {out}.csv and {out}.md")


# ------------------------------------------------------------------------------------------ CLI

def add_seed_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments that name one experiment per seed: ``queue`` here and ``cluster submit``."""
    parser.add_argument("--name", required=True, help=f"experiment name prefix ({PLAIN_NAME_RULE})")
    parser.add_argument("--seeds", nargs="+", required=True, help="non-negative integers, e.g. 0 1 2 3 4")
    parser.add_argument("--seed-params", default=",".join(SEED_PARAMS),
                        help="params set to the seed, comma-separated (default: %(default)s; Colored "
                             "Digits: debias_train.seed)")
    parser.add_argument("-S", "--set-param", dest="set_params", action="append", metavar="KEY=VALUE",
                        help="a param fixed in every experiment (a number or a plain name); repeatable")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m debiaslab.paired",
                                 description="Paired comparison of a method and its reference over seeds.")
    sub = ap.add_subparsers(dest="command", required=True)
    q = sub.add_parser("queue", help="queue one DVC experiment NAME-seedS per seed",
                       description="Queue `dvc exp run --queue -n NAME-seedS -S P=S ... TARGET...` per seed. "
                                   "Name the stages of the reference and of the method, e.g. "
                                   "evaluate@baseline-Smiling evaluate@augmented-Smiling: both must run "
                                   "with the seed (`table` skips a metric file left as the commit's).")
    add_seed_arguments(q)
    q.add_argument("--run", action="store_true", help="then start the queue: dvc queue start -j 1")
    q.add_argument("--dry-run", action="store_true", help="print the dvc commands instead of running them")
    q.add_argument("targets", nargs="*", metavar="TARGET", help="DVC stages, e.g. evaluate@augmented-Smiling")

    t = sub.add_parser("table", help="the paired Δ table of experiments NAME-seedS",
                       description="Per seed Δ = method − reference, mean Δ and its t-interval over seeds: "
                                   "writes OUT.csv and OUT.md, prints the table.")
    t.add_argument("--name", action="append", required=True,
                   help="experiment name prefix; repeat for variants in one table")
    t.add_argument("--input", help="a saved `dvc exp show --json -A` file instead of running DVC")
    t.add_argument("--family", default="faces", help="faces (metrics/evaluate) or digits (metrics/debias)")
    t.add_argument("--pairs", help="method:reference,... (faces default: augmented, fairbatch, drfairness "
                                   "against baseline; digits: lff_be:lff,disent_be:disent)")
    t.add_argument("--methods", help="comma-separated methods, each against --baseline")
    t.add_argument("--baseline", help="the reference of --methods (faces: baseline, digits: erm)")
    t.add_argument("--target", help="faces: the classifier's target attribute (default Smiling)")
    t.add_argument("--protected", help="faces: the protected attribute (default Eyeglasses)")
    t.add_argument("--severity", help="digits: the severity folder of metrics/debias, e.g. 1.0")
    t.add_argument("--split", help="faces: test or balanced (default: balanced where every experiment "
                                   "has it, else test)")
    t.add_argument("--seed-param", help="the param that must equal the seed of the name "
                                        "(faces: train.seed, digits: debias_train.seed)")
    t.add_argument("--seeds", nargs="+", help="only these seeds of the live experiments (default: every "
                                              "seed found)")
    t.add_argument("--confidence", default="0.95", help="of the t-interval (default: %(default)s)")
    t.add_argument("--out", help="output path without suffix (default: reports/paired/NAME)")
    t.add_argument("--previous", action="append", metavar="CSV",
                   help="an earlier table's CSV whose experiments are gone from this workspace: its rows "
                        "of the --name variants join the live ones (a seed in both is an error); repeatable")

    g = sub.add_parser("grid", help="the GAN chain's diagnostics and Δ, one column per variant",
                       description="For each --name (e.g. renderer-gt renderer-h dcgan-gt dcgan-h): SVM "
                                   "accuracy, cos(w_t, w_g), label agreement, flipped/kept by each judge "
                                   "(mean ± sd over seeds) and Δ = augmented − baseline of the fairness "
                                   "metrics (mean [95% t-interval]); writes OUT.csv and OUT.md.")
    g.add_argument("--name", action="append", required=True, help="experiment name prefix; one per variant")
    g.add_argument("--input", help="a saved `dvc exp show --json -A` file instead of running DVC")
    g.add_argument("--target", help="the classifier's target attribute (default Smiling)")
    g.add_argument("--protected", help="the protected attribute (default Eyeglasses)")
    g.add_argument("--out", help="output path without suffix (default: reports/paired/grid)")
    g.add_argument("--previous", action="append", metavar="CSV",
                   help="an earlier grid's CSV whose experiments are gone from this workspace: its rows of "
                        "the --name variants join the live ones (a seed in both is an error); repeatable")
    return ap.parse_args(argv)


@stage_main("paired")
def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    if args.command == "queue":
        queue(args)
    elif args.command == "grid":
        from debiaslab.latent_grid import grid  # it builds on this module

        grid(args)
    else:
        table(args)


if __name__ == "__main__":
    main()
