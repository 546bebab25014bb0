"""The results report: every metrics file under metrics/ as tables, the plots under reports/, in
Markdown (``reports/summary.md``) and in one self-contained HTML page (``reports/index.html``).

Pure functions: :func:`collect` reads the JSON files and lists the plots, :func:`render_markdown`
and :func:`render_html` turn that into text. A section whose metrics files are absent (a profile
that skips a chain, a pipeline not yet run) is left out. Intervals are the 95% intervals the JSON
holds (bootstrap, from the evaluate stage); a proportion over a number of samples the JSON records
gets a Wilson score interval (:func:`wilson`); any other number is shown alone, and the table's
note says so. The paired seed comparisons (``reports/paired/NAME.csv`` of ``python -m
debiaslab.paired table``) are recomputed from their tidy CSV with that module's statistics.

Every field a table reads is type-checked (:class:`Obj`): a missing or wrongly typed one is a
one-line error naming the file and the key path, never a dropped row or a wrong cell; a field that
older files lack or that is null by design is shown as "-"; fields the report does not read (a
newer stage's additions) are ignored.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .errors import DebiaslabError
from .params import CELEBA_ATTRIBUTES, GAN_CLASSIFIERS, MethodsParams, bias_ensemble_run

if TYPE_CHECKING:
    from .paired import Delta

T = TypeVar("T")

Z95 = 1.959963984540054  # standard normal quantile at 0.975
# The order of rows (the default methods lists; methods found beyond them follow, sorted)
_DEFAULT = MethodsParams()
METHODS = (*GAN_CLASSIFIERS, *_DEFAULT.fair)
DEBIAS_METHODS = tuple(run for m in _DEFAULT.debias
                       for run in (m, *[bias_ensemble_run(m)] * (m in _DEFAULT.bias_ensemble)))


# ----------------------------------------------------------------------------- numbers
def wilson(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` observed over ``n`` samples (95% by default)."""
    if n <= 0:
        raise ValueError(f"wilson: n must be positive, got {n}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"wilson: p must be in [0, 1], got {p}")
    z2n = z * z / n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / n + z2n / (4 * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def fmt(x, digits: int = 3) -> str:
    """A number with ``digits`` decimals; "-" for a missing (None or NaN) value."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}"


def ci(m: dict | float | None, digits: int = 3) -> str:
    """``value [lo, hi]`` of a ``{value, lo, hi}`` entry, a plain number alone; "-" when missing."""
    if not isinstance(m, dict):
        return fmt(m, digits)
    return f"{fmt(m['value'], digits)} [{fmt(m['lo'], digits)}, {fmt(m['hi'], digits)}]"


def median_2sigma(m: Obj | None, digits: int = 3) -> str:
    """``median ± 2σ`` of a ``{median, two_sigma}`` entry; "-" when missing."""
    if m is None:
        return "-"
    median = m.get("median", "a number or null", lambda x: x is None or is_number(x))
    two_sigma = m.get("two_sigma", "a number or null", lambda x: x is None or is_number(x))
    return f"{fmt(median, digits)} ± {fmt(two_sigma, digits)}" if median is not None else "-"


def proportion(p: float | None, n: int | None, digits: int = 3) -> str:
    """``p [lo, hi]`` with the Wilson interval when ``n`` is known, else ``p`` alone."""
    if n is None or p is None or (isinstance(p, float) and math.isnan(p)):
        return fmt(p, digits)
    lo, hi = wilson(p, n)
    return f"{fmt(p, digits)} [{fmt(lo, digits)}, {fmt(hi, digits)}]"


def mean_sd(m: dict) -> str:
    return f"{m['mean']:.3f} ± {m['std']:.3f}"


# ----------------------------------------------------------------------------- checked access
class LayoutError(DebiaslabError):
    """A value of the wrong shape in a metrics file, as ``KEY.PATH: expected ..., got ...``;
    :func:`parse` puts the file's name in front."""


def _shown(value) -> str:
    """A JSON value as the message quotes it: strings as Python does ('abc'), the rest as JSON."""
    text = repr(value) if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:56] + " ..."


def is_number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)  # JSON true is no number


def is_proportion(x) -> bool:
    return is_number(x) and (math.isnan(x) or 0 <= x <= 1)  # NaN: a rate over no samples ("-")


def is_count(x, lo: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= lo


class Obj:
    """A JSON object of a metrics file, read key by key. Each accessor checks the type of the value
    it returns, so a missing or wrongly typed field is a :class:`LayoutError` naming its key path;
    keys no accessor asks for (fields a newer stage added) are ignored. ``optional``: an absent
    or null value is None, for the fields the report shows as "-"."""

    def __init__(self, data: dict, where: str = ""):
        self.data, self.where = data, where

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def error(self, key: str, what: str) -> LayoutError:
        if key not in self.data:
            return LayoutError(f"{self.path(key)}: missing (expected {what})")
        return LayoutError(f"{self.path(key)}: expected {what}, got {_shown(self.data[key])}")

    def get(self, key: str, what: str, ok: Callable[[object], bool], optional: bool = False):
        value = self.data.get(key)
        if optional and value is None:
            return None
        if key not in self.data or not ok(value):
            raise self.error(key, what)
        return value

    def keys(self) -> list[str]:
        return list(self.data)

    def obj(self, key: str, optional: bool = False) -> Obj | None:
        data = self.get(key, "an object", lambda x: isinstance(x, dict), optional)
        return None if data is None else Obj(data, self.path(key))

    def number(self, key: str, optional: bool = False) -> float | None:
        return self.get(key, "a number", is_number, optional)

    def proportion(self, key: str, optional: bool = False, nullable: bool = False) -> float | None:
        """A rate in [0, 1]; ``nullable``: the key must be there, but null is a valid "-"."""
        what = "a proportion in [0, 1]" + (" or null" if nullable else "")
        return self.get(key, what, lambda x: is_proportion(x) or (nullable and x is None), optional)

    def count(self, key: str, optional: bool = False, lo: int = 1) -> int | None:
        what = "a positive integer" if lo == 1 else f"an integer >= {lo}"
        return self.get(key, what, lambda x: is_count(x, lo), optional)

    def text(self, key: str, optional: bool = False) -> str | None:
        return self.get(key, "a string", lambda x: isinstance(x, str), optional)

    def flag(self, key: str, optional: bool = False) -> bool | None:
        return self.get(key, "true or false", lambda x: isinstance(x, bool), optional)

    def metric(self, key: str, optional: bool = False) -> dict | float | None:
        """A number, or the evaluate stage's ``{value, median, lo, hi}`` (null where not finite)."""
        m = self.get(key, "a number or {value, lo, hi}", lambda x: is_number(x) or isinstance(x, dict),
                     optional)
        if isinstance(m, dict):
            entry = Obj(m, self.path(key))
            for k in ("value", "lo", "hi"):
                entry.get(k, "a number or null", lambda x: x is None or is_number(x))
        return m

    def numbers(self, key: str, optional: bool = False) -> dict[str, float] | None:
        """An object of numbers, e.g. one accuracy per attribute."""
        d = self.obj(key, optional)
        return None if d is None else {k: d.number(k) for k in d.keys()}

    def spread(self, key: str) -> dict[str, float]:
        """``{mean, std}``, e.g. leakage over the attacker rounds."""
        d = self.obj(key)
        return {k: d.number(k) for k in ("mean", "std")}


# ----------------------------------------------------------------------------- reading
def read_json(path: str | Path) -> dict:
    """A metrics file as a dict; a file that is not a JSON object is a DebiaslabError naming it."""
    try:
        obj = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise DebiaslabError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, "
                             f"column {err.colno}); rerun the stage that writes it") from None
    except UnicodeDecodeError:
        raise DebiaslabError(f"{path}: not valid JSON (not UTF-8 text)") from None
    if not isinstance(obj, dict):
        raise DebiaslabError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def parse(path: Path, build: Callable[[Obj], T]) -> T:
    """``build`` applied to the metrics file ``path``; a file without the keys (or types) it needs
    is a one-line DebiaslabError naming the file and the key path, as a file that is not JSON is."""
    report = Obj(read_json(path))
    try:
        return build(report)
    except LayoutError as err:
        raise DebiaslabError(f"{path}: {err}") from None
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise DebiaslabError(f"{path}: unexpected layout ({type(err).__name__}: {err}); "
                             "rerun the stage that writes it") from None


def metrics_files(root: Path, pattern: str) -> list[Path]:
    """The files matching ``pattern`` under ``root``, sorted; hidden ones (the temporary file of an
    atomic write that a killed stage left behind) are skipped."""
    return sorted(p for p in Path(root).glob(pattern)
                  if not any(part.startswith(".") for part in p.relative_to(root).parts))


def one_file(name: str, build: Callable[[Obj], list[Table]]) -> Callable[[Path], list[Table]]:
    """The table builder for the single metrics file ROOT/NAME: no tables when it is absent."""
    def tables(root: Path) -> list[Table]:
        path = Path(root) / name
        return parse(path, build) if path.is_file() else []

    return tables


def set_order(name: str) -> tuple:
    """Colored Digits severities numerically, then named bias sets (faces) by name."""
    try:
        return (0, float(name), "")
    except ValueError:
        return (1, 0.0, name)


def is_severity(name: str) -> bool:
    return set_order(name)[0] == 0


def method_order(methods: tuple[str, ...]) -> Callable[[str], tuple]:
    return lambda m: (methods.index(m), "") if m in methods else (len(methods), m)


# ----------------------------------------------------------------------------- structure
@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""  # what the cells are and where intervals come from (or why there are none)


def drop_empty(table: Table, columns: set[str]) -> Table:
    """``table`` without those of ``columns`` that are "-" in every row: a field that only newer
    stages write gets a column where some file has it, and older files render as before."""
    keep = [i for i, h in enumerate(table.header) if h not in columns or any(r[i] != "-" for r in table.rows)]
    return Table(table.title, [table.header[i] for i in keep], [[r[i] for i in keep] for r in table.rows],
                 table.note)


@dataclass
class Plot:
    path: Path   # where to read it
    rel: str     # relative to the reports folder: the Markdown link
    label: str   # the caption: the file as the stage names it, e.g. reports/pairs/Smiling.png


@dataclass
class Section:
    key: str
    title: str
    how_to_read: str
    tables: list[Table] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)


# ----------------------------------------------------------------------------- fairness
FAIRNESS_HEADER = ["method", "target", "protected", "AP", "accuracy", "DEO", "BA", "KL", "KL (original)",
                   "EO gap", "DP gap"]


@dataclass(frozen=True)
class Split:
    """A test set the evaluate stage reports in the same layout: its key, the key of its size, and
    how its table is captioned."""

    key: str
    n_key: str
    title: str    # with {n}: " (n = 4,000)" when every file records the same size, else ""
    images: str   # "the 2,000 ... images" of the note
    note: str     # what the cells are
    more: str = ""  # said after the sizes


SPLITS = (
    Split("test", "n_test", "Fairness on test, per method", "test images",
          "Every cell: value on the full test set [95% bootstrap percentile interval]"),
    # SynthFaces' balanced test split: optional, so a file without it renders as before
    Split("balanced", "n_balanced", "Fairness on the balanced test split{n}, per method",
          "balanced test images",
          "Every cell: value on the balanced test split [95% bootstrap percentile interval]",
          " Same classifiers and thresholds as on test; the split has equal counts in each (target, "
          "protected) cell, so the group gaps' intervals are far narrower than on the skewed test split."),
)


def _fairness_rows(method: str, target: str, split: Obj) -> list[list[str]]:
    """One row per protected attribute: the keys of the split that are attribute names (any other
    key, such as AP, is a metric of the whole split)."""
    attrs = [k for k in split.keys() if k in CELEBA_ATTRIBUTES]
    if not attrs:
        raise LayoutError(f"{split.where}: expected at least one protected attribute (an object with "
                          "DEO, BA, KL)")
    ap, accuracy = ci(split.metric("AP")), ci(split.metric("accuracy"))
    rows = []
    for attr in attrs:
        m = split.obj(attr)
        rows.append([method, target, attr, ap, accuracy, *(ci(m.metric(k)) for k in ("DEO", "BA", "KL")),
                     median_2sigma(m.obj("KL_original", optional=True)),  # newer fields from here
                     *(ci(m.metric(k, optional=True)) for k in ("EO_gap", "DP_gap"))])
    return rows


Sizes = tuple[int | None, int | None]  # (images in the split, bootstrap resamples)


def _fairness_file(method: str, target: str, report: Obj) -> dict[str, tuple[list[list[str]], Sizes]]:
    """{split key: (its rows, its sizes)} for the splits the file has; test is required."""
    out = {}
    for split in SPLITS:
        section = report.obj(split.key, optional=split.key != "test")
        if section is not None:
            sizes = (report.count(split.n_key, optional=True), report.count("n_boot", optional=True))
            out[split.key] = (_fairness_rows(method, target, section), sizes)
    return out


def _fairness_table(split: Split, rows: list[list[str]], sizes: set[Sizes]) -> Table:
    """The sizes go into the title and note only when every file records the same ones."""
    order = method_order(METHODS)
    rows.sort(key=lambda r: (r[1], r[2], order(r[0])))
    n, n_boot = next(iter(sizes)) if len(sizes) == 1 else (None, None)
    note = split.note
    if n is not None and n_boot is not None:
        note += f" ({n_boot} resamples of the {n:,} {split.images})"
    title = split.title.format(n=f" (n = {n:,})" if n is not None else "")
    return Table(title, FAIRNESS_HEADER, rows, note + "." + split.more)


def fairness_tables(root: Path) -> list[Table]:
    """metrics/evaluate/METHOD/TARGET.json: one row per method × target × protected attribute, in a
    table per split (test; the balanced test split where a file has one)."""
    found: dict[str, tuple[list[list[str]], set[Sizes]]] = {s.key: ([], set()) for s in SPLITS}
    for path in metrics_files(root, "evaluate/*/*.json"):
        by_split = parse(path, lambda r, p=path: _fairness_file(p.parent.name, p.stem, r))
        for key, (rows, size) in by_split.items():
            found[key][0].extend(rows)
            found[key][1].add(size)
    return [_fairness_table(s, *found[s.key]) for s in SPLITS if found[s.key][0]]


# ----------------------------------------------------------------------------- GAN chain
def _names(d: dict) -> str:
    return ", ".join(f"{k} {fmt(v)}" for k, v in d.items()) or "-"


# latent_edit.labels as the table names it: the true labels come from the renderer generator
LABEL_SOURCES = {"ground_truth": "ground truth (renderer)"}


def _latent_row(target: str, latent: Obj) -> list[str]:
    labels = latent.text("labels", optional=True)  # older files: hallucinated, not recorded
    return [target, latent.text("variant"), LABEL_SOURCES.get(labels, labels or "-"),
            f"{latent.count('n_fit'):,}",
            _names(latent.numbers("svm_heldout_accuracy")), f"{latent.number('cos_wt_wg'):+.3f}",
            _names(latent.numbers("mean_edit_distance", optional=True) or {})]


def latent_table(root: Path) -> list[Table]:
    rows = [parse(path, lambda r, p=path: _latent_row(p.stem, r))
            for path in metrics_files(root, "latent/*.json")]
    if not rows:
        return []
    return [drop_empty(Table("Latent hyperplanes (fit_hyperplanes)",
                             ["target", "variant", "SVM labels", "latents fitted", "SVM held-out accuracy",
                              "cos(w_t, w_g)", "mean ‖z' − z‖ per edit"], rows,
                             "Values alone: the JSON does not record how many latents the held-out "
                             "accuracy was measured on, so no interval is given."), {"SVM labels"})]


def _edit_cells(d: Obj, n: int | None) -> list[str]:
    """target kept, then "ATTR flipped|kept p" for each protected attribute; other keys are ignored."""
    protected = [k for k in d.keys() if k != "target_kept" and k.endswith(("_flipped", "_kept"))]
    others = [f"{k.rsplit('_', 1)[0]} {k.rsplit('_', 1)[1]} {proportion(d.proportion(k), n)}"
              for k in protected]
    return [proportion(d.proportion("target_kept"), n), "; ".join(others)]


# The judges of generate_pairs, as the table names them. Only the baseline is always there: no
# oracle on real CelebA, and only the renderer generator knows the true labels.
JUDGES = {"baseline": "baseline", "oracle": "oracle", "true": "truth (renderer)"}


def _pairs_rows(target: str, pairs: Obj) -> list[list[str]]:
    rows = []
    n_pairs = pairs.count("n_pairs", lo=0)
    generator = pairs.text("generator", optional=True) or "-"  # older files do not record it
    for judge, name in JUDGES.items():
        edits = pairs.obj(judge, optional=judge != "baseline")
        if edits is None or (judge != "baseline" and not edits.keys()):
            continue
        if not edits.keys():
            raise LayoutError(f"{judge}: expected at least one edit (an object with target_kept)")
        per_edit = n_pairs / len(edits.keys())  # generate_pairs: the same latents for every edit
        n = int(per_edit) if per_edit.is_integer() and per_edit > 0 else None
        for edit in edits.keys():
            rows.append([target, generator, edit, name, f"{n:,}" if n else "-",
                         *_edit_cells(edits.obj(edit), n)])
    return rows


def pairs_table(root: Path) -> list[Table]:
    rows = [row for path in metrics_files(root, "pairs/*.json")
            for row in parse(path, lambda r, p=path: _pairs_rows(p.stem, r))]
    if not rows:
        return []
    return [drop_empty(Table("Edited pairs G(z) → G(z') (generate_pairs)",
                             ["target", "generator", "edit", "judge", "pairs", "target kept",
                              "protected attributes"], rows,
                             "Proportions over the pairs of one edit (n_pairs / number of edits), with 95% "
                             "Wilson intervals; a '-' in 'pairs' means that count is unknown and the value "
                             "stands alone."), {"generator"})]


TRUTH_AGREEMENT = "agreement with truth (renderer)"


def _hallucinate_row(attr: str, d: Obj, n: int | None) -> list[str]:
    return [attr, fmt(d.number("f1_threshold", optional=True)), proportion(d.proportion("positive_rate"), n),
            *(proportion(d.proportion(k, optional=True), n)  # no oracle on real CelebA, truth: renderer
              for k in ("oracle_agreement", "true_agreement"))]


def _cells(report: Obj, attrs: list[str]) -> list[list[str]]:
    """One row per ``cells_TARGET_PROTECTED`` object of counts."""
    rows = []
    for key in report.keys():
        if key.startswith("cells_"):
            counts, rest = report.obj(key), key.removeprefix("cells_")
            pair = next((f"{t} × {g}" for t in attrs for g in attrs if f"{t}_{g}" == rest), rest)
            rows.append([pair, *(f"{counts.count(c, lo=0):,}" for c in ("t0_g0", "t0_g1", "t1_g0", "t1_g1"))])
    return rows


def _hallucinate(report: Obj) -> list[Table]:
    n = report.count("n_images", optional=True)
    attrs = [k for k in report.keys() if k in CELEBA_ATTRIBUTES]
    if not attrs:
        raise LayoutError("expected at least one attribute (an object with positive_rate)")
    rows = [_hallucinate_row(a, report.obj(a), n) for a in attrs]
    where = (f"95% Wilson intervals over the {n:,} generated images" if n
             else "values alone: the JSON does not record the number of images")
    tables = [drop_empty(Table("Hallucinated labels of G(z) (hallucinate)",
                               ["attribute", "F1 threshold", "positive rate", "agreement with oracle",
                                TRUTH_AGREEMENT], rows, f"Proportions: {where}."), {TRUTH_AGREEMENT})]
    cells = _cells(report, attrs)
    if cells:
        tables.append(Table("Generated images per (target, protected) cell (hallucinated labels)",
                            ["target × protected", "t0 g0", "t0 g1", "t1 g0", "t1 g1"], cells,
                            "Counts of G(z) by the labels the baseline classifiers gave them."))
    return tables


def _oracle(report: Obj) -> list[Table]:
    if report.flag("enabled", optional=True) is False:  # real CelebA: no oracle
        return []
    held = report.numbers("heldout_unbiased_accuracy")
    real = report.numbers("real_test_accuracy", optional=True) or {}
    return [Table("Oracle judge (oracle)",
                  ["attribute", "accuracy, unbiased held-out", "accuracy, real test"],
                  [[a, fmt(acc), fmt(real.get(a))] for a, acc in held.items()],
                  "Values alone: the JSON does not record how many images each accuracy is over, "
                  "so no interval is given.")]


def _inversion(report: Obj) -> list[Table]:
    row = [f"{report.count('n_images'):,}", str(report.count("steps")), f"{report.number('mse_mean'):.4f}",
           fmt(report.number("mse_median", optional=True), 4), fmt(report.number("latent_norm_mean"), 2)]
    return [Table("Inversion of real images (invert_latents)",
                  ["images", "steps", "MSE, mean", "MSE, median", "mean ‖z‖"], [row],
                  "Means over the inverted images (pixels in [−1, 1]); no interval: the JSON holds no "
                  "spread.")]


hallucinate_tables = one_file("hallucinate.json", _hallucinate)
oracle_table = one_file("oracle.json", _oracle)
inversion_table = one_file("inversion.json", _inversion)


def _full_skew_row(m: Obj) -> list[str]:
    target, protected, ap = m.text("target"), m.text("protected"), m.obj("test_AP")
    agree = "differs from" if m.flag("opposite") else "equals"
    return [target, f"{protected} ({agree} {target})", f"{m.count('train_images'):,}",
            fmt(ap.number(target)), fmt(ap.number(protected))]


def full_skew_table(root: Path) -> list[Table]:
    rows = [parse(path, _full_skew_row) for path in metrics_files(root, "full_skew/*.json")]
    return [Table("Fully skewed training (ablation: full_skew_tests.py)",
                  ["target", "trained where", "training images", "test AP vs target",
                   "test AP vs protected"], rows,
                  "A target classifier trained only where the target equals (or differs from) the "
                  "protected attribute, so the two are confounded; its scores on the whole test split "
                  "ranked against each. The higher AP says which of the two it learned (with 'differs', "
                  "the protected labels are flipped first, as in the original).")] if rows else []


def gan_tables(root: Path) -> list[Table]:
    return [*latent_table(root), *pairs_table(root), *hallucinate_tables(root), *oracle_table(root),
            *inversion_table(root), *full_skew_table(root)]


CATEGORY_METRICS = ("AP", "DEO", "BA", "KL")
CATEGORY_MODELS = ("baseline", "augmented")


def _test_values(r: Obj, protected: str) -> list[float | None]:
    """An evaluation's test values of CATEGORY_METRICS (AP of the split, the rest of ``protected``)."""
    test = r.obj("test")
    group = test.obj(protected)
    metrics = [test.metric("AP"), *(group.metric(k) for k in CATEGORY_METRICS[1:])]
    return [m["value"] if isinstance(m, dict) else m for m in metrics]


def category_table(root: Path, categories: dict[str, list[str]], protected: str) -> list[Table]:
    """The GAN paper's results table: AP, DEO, BA and KL on test of the baseline and the augmented
    model, averaged over the targets of each category (mean ± sd over the targets that have both
    evaluations; the count is shown)."""
    rows = []
    for category, targets in categories.items():
        paths = {t: [Path(root) / "evaluate" / m / f"{t}.json" for m in CATEGORY_MODELS] for t in targets}
        found = [t for t in targets if all(p.is_file() for p in paths[t])]
        # values[t][model][metric] -> per (metric, model) the list over the found targets
        values = [[parse(p, lambda r: _test_values(r, protected)) for p in paths[t]] for t in found]
        rows.append([category, f"{len(found)} of {len(targets)}",
                     *(mean_sd_of([v[m][k] for v in values])
                       for k in range(len(CATEGORY_METRICS)) for m in range(len(CATEGORY_MODELS)))])
    header = ["category", "targets", *(f"{k} {m}" for k in CATEGORY_METRICS for m in CATEGORY_MODELS)]
    return [Table(f"Per category of targets (protected {protected}), as the GAN paper's table", header,
                  rows, "Each cell: mean ± standard deviation over the category's targets of the test "
                        "value (report.categories in params.yaml names them); AP higher is better, "
                        "DEO, BA and KL lower.")] if rows else []


def mean_sd_of(values: list[float | None]) -> str:
    """``mean ± sd`` of the finite values; "-" when there are none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return "-"
    return mean_sd({"mean": statistics.fmean(finite), "std": statistics.pstdev(finite)})


# ----------------------------------------------------------------------------- leakage
def _leakage_row(name: str, m: Obj) -> list[str]:
    return [name, fmt(m.number("mAP")), fmt(m.number("macro_F1")), mean_sd(m.spread("model_leakage")),
            fmt(m.number("natural_leakage_at_F1")), f"{m.number('amplification'):+.3f}"]


def _leakage(report: Obj) -> list[Table]:
    protected, models = report.text("protected"), report.obj("models")
    rows = [["(ground-truth labels)", "-", "-", mean_sd(report.spread("dataset_leakage")), "-", "-"]]
    rows += [_leakage_row(name, models.obj(name)) for name in models.keys()]
    attacker = report.obj("attacker", optional=True)
    rounds = attacker.count("rounds", optional=True) if attacker else None
    spread = f"{rounds} attacker rounds" if rounds else "the attacker rounds"
    threshold = attacker.text("f1_threshold", optional=True) if attacker else None
    f1 = {"half": "macro-F1 (at 0.5)", "calibrated": "macro-F1 (calibrated)"}.get(threshold, "macro-F1")
    return [Table(f"Leakage of {protected}",
                  ["model", "mAP", f1, "leakage λ", "λ_D(F1)", "Δ = λ_M − λ_D(F1)"], rows,
                  f"Leakage is mean ± standard deviation over {spread}, not a confidence interval; mAP, "
                  "macro-F1 and Δ are single values (the JSON does not record the number of test "
                  "images, so no interval is given). A model's F1, where λ_D(F1) is read, thresholds "
                  "its sigmoid outputs at 0.5 as Wang et al.'s code does (leakage.f1_threshold: half) or "
                  "at each label's calibrated val threshold (calibrated).")]


def _leakage_balanced(report: Obj) -> list[Table]:
    protected, alphas = report.text("protected"), report.obj("alphas")
    rows = []
    for alpha in alphas.keys():
        result = alphas.obj(alpha)
        rows.append([f"α = {alpha}", "labels", "-", "-", mean_sd(result.spread("dataset_leakage")), "-", "-"])
        models = result.obj("models")
        rows += [[f"α = {alpha}", *_leakage_row(name, models.obj(name))] for name in models.keys()]
    return [Table(f"Leakage of {protected}, models trained on α-balanced sets",
                  ["training set", "model", "mAP", "macro-F1", "leakage λ", "λ_D(F1)",
                   "Δ = λ_M − λ_D(F1)"], rows,
                  "Wang et al.'s experiment: each model trained again on the α-balanced subset of the "
                  "training split (per label and overall, the protected groups within a factor α). "
                  "Leakage is measured on the α-balanced subsets of the splits, mAP and macro-F1 on "
                  "the whole test split; the whole-data rows are the table above (α = original).")]


leakage_tables = one_file("leakage.json", _leakage)
leakage_balanced_tables = one_file("leakage_balanced.json", _leakage_balanced)


def leakage_section(root: Path) -> list[Table]:
    return [*leakage_tables(root), *leakage_balanced_tables(root)]


# ----------------------------------------------------------------------------- BiasEnsemble
def debias_results(root: Path) -> dict[str, dict[str, dict]]:
    """metrics/debias/SET/METHOD.json as {set: {method: test accuracies}}, sets and methods ordered."""
    out: dict[str, dict[str, dict]] = {}
    by_method = method_order(DEBIAS_METHODS)
    paths = sorted(metrics_files(root, "debias/*/*.json"),
                   key=lambda p: (set_order(p.parent.name), by_method(p.stem)))
    for path in paths:
        out.setdefault(path.parent.name, {})[path.stem] = parse(path, _test_accuracies)
    return out


def _test_accuracies(report: Obj) -> dict[str, float | None]:
    """Overall, bias-aligned and bias-conflicting test accuracy; the last two are null when the test
    split has no such images (shown as "-")."""
    test = report.obj("test")
    return {"accuracy": test.proportion("accuracy"),
            **{k: test.proportion(k, nullable=True) for k in ("aligned_accuracy", "conflicting_accuracy")}}


def colored_digits_n_test(root: Path) -> int | None:
    """The test size from metrics/colored_digits.json; None when that file is absent."""
    path = root / "colored_digits.json"
    return parse(path, lambda r: r.count("n_test")) if path.is_file() else None


def digits_tables(results: dict[str, dict[str, dict]], n_test: int | None) -> list[Table]:
    severities = [s for s in results if is_severity(s)]
    if not severities:
        return []
    methods = sorted({m for s in severities for m in results[s]}, key=method_order(DEBIAS_METHODS))

    def pivot(cell: Callable[[dict], str]) -> list[list[str]]:
        return [[f"{s} %", *(cell(results[s][m]) if m in results[s] else "-" for m in methods)]
                for s in severities]

    where = (f"with 95% Wilson intervals over the {n_test:,} test images (metrics/colored_digits.json)"
             if n_test else "values alone: metrics/colored_digits.json, which records the test size, "
             "is absent")
    return [
        Table("Colored Digits: test accuracy (rows: % bias-conflicting training images)",
              ["severity", *methods], pivot(lambda r: proportion(r["accuracy"], n_test)),
              f"Accuracy on the unbiased test split, {where}."),
        Table("Colored Digits: bias-aligned / bias-conflicting test accuracy",
              ["severity", *methods],
              pivot(lambda r: f"{fmt(r['aligned_accuracy'])} / {fmt(r['conflicting_accuracy'])}"),
              "Values alone: the JSON does not record how many test images are bias-aligned or "
              "bias-conflicting, so no interval is given."),
    ]


def named_set_tables(results: dict[str, dict[str, dict]]) -> list[Table]:
    tables = []
    for name, methods in results.items():
        if is_severity(name):
            continue
        rows = [[m, fmt(r["accuracy"]), fmt(r["aligned_accuracy"]), fmt(r["conflicting_accuracy"])]
                for m, r in methods.items()]
        tables.append(Table(f"Bias set '{name}': test accuracy", ["method", "test", "bias-aligned",
                                                                  "bias-conflicting"], rows,
                            "Values alone: the JSON does not record the number of test images, so no "
                            "interval is given."))
    return tables


def _selection_row(name: str, be: Obj) -> list[str]:
    """The counts are optional (files written before they were recorded): no interval without them."""
    n_sel, n_train = be.count("n_selected", optional=True, lo=0), be.count("n_train", optional=True, lo=0)
    frac = be.proportion("true_conflicting_fraction", optional=True)
    n_conf = round(frac * n_train) if frac is not None and not math.isnan(frac) and n_train else None
    return [f"{name} %" if is_severity(name) else name,
            f"{n_sel:,} / {n_train:,}" if n_sel is not None and n_train else "-",
            proportion(be.proportion("aligned_precision"), n_sel or None, digits=4),
            proportion(be.proportion("conflicting_recall"), n_conf or None, digits=4), fmt(frac)]


def selection_table(root: Path) -> list[Table]:
    rows = [parse(path, lambda r, p=path: _selection_row(p.stem, r))
            for path in sorted(metrics_files(root, "bias_ensemble/*.json"), key=lambda p: set_order(p.stem))]
    if not rows:
        return []
    return [Table("BiasEnsemble selection of bias-aligned training images (bias_ensemble)",
                  ["set", "selected / train", "aligned precision", "conflicting recall",
                   "true conflicting fraction"], rows,
                  "95% Wilson intervals: precision over the selected images, recall over the truly "
                  "bias-conflicting ones (true conflicting fraction × training images).")]


def debias_tables(root: Path) -> list[Table]:
    results = debias_results(root)
    return [*digits_tables(results, colored_digits_n_test(root)), *named_set_tables(results),
            *selection_table(root)]


# ----------------------------------------------------------------------------- paired seeds
def _paired():
    """debiaslab.paired, imported on first use: it imports sweep, which imports summary, which
    imports this module, so an import at the top would be circular."""
    from . import paired

    return paired


def _csv_number(row: dict[str, str], key: str) -> float:
    try:
        value = float(row[key])
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise LayoutError(f"{key}: expected a finite number, got {_shown(row[key])}")
    return value


def _paired_delta(row: dict[str, str]) -> Delta:
    """One CSV row as paired.py's Delta, every field checked; Δ must be method − reference (to the
    10 significant digits the CSV holds), so a hand-edited value cannot slip into the statistics."""
    if not re.fullmatch(r"[0-9]+", row["seed"]):
        raise LayoutError(f"seed: expected a non-negative integer, got {_shown(row['seed'])}")
    for key in ("variant", "method", "reference", "metric"):
        if not row[key]:
            raise LayoutError(f"{key}: expected a name, got ''")
    m, r, d = (_csv_number(row, k) for k in ("method_value", "reference_value", "delta"))
    if not math.isclose(d, m - r, rel_tol=1e-6, abs_tol=1e-9):
        raise LayoutError(f"delta: {d:.10g} is not method_value − reference_value ({m - r:.10g})")
    return _paired().Delta(row["variant"], int(row["seed"]), row["experiment"], row["rev"], row["method"],
                           row["reference"], row["metric"], m, r, d)


def _paired_rows(text: str) -> list[tuple[int, dict[str, str]]]:
    """(line number, row by column) of a CSV with exactly the columns paired.py writes."""
    columns = _paired().CSV_COLUMNS
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    if header != columns:
        raise LayoutError(f"expected the header {','.join(columns)}, got {_shown(','.join(header))}")
    rows = []
    for row in reader:
        if len(row) != len(columns):
            raise LayoutError(f"line {reader.line_num}: expected {len(columns)} fields, got {len(row)}")
        rows.append((reader.line_num, dict(zip(columns, row, strict=True))))
    if not rows:
        raise LayoutError("no rows (expected one per variant, seed, pair and metric)")
    return rows


def _paired_deltas(rows: list[tuple[int, dict[str, str]]]) -> list[Delta]:
    """The rows as Deltas; a second row for one seed of one comparison would count that seed twice."""
    deltas, seen = [], set()
    for line, row in rows:
        try:
            delta = _paired_delta(row)
        except LayoutError as err:
            raise LayoutError(f"line {line}: {err}") from None
        key = (delta.variant, delta.seed, delta.method, delta.reference, delta.metric)
        if key in seen:
            raise LayoutError(f"line {line}: a second row for variant {delta.variant}, seed {delta.seed}, "
                              f"{delta.method} − {delta.reference}, {delta.metric}")
        seen.add(key)
        deltas.append(delta)
    return deltas


def read_paired_csv(path: Path) -> tuple[str, list[Delta]]:
    """The split and the per-seed Δ of one ``python -m debiaslab.paired table`` CSV. Any other
    layout is a one-line DebiaslabError naming the file (and the line), as for a metrics file."""
    try:
        rows = _paired_rows(Path(path).read_text())
        splits = sorted({row["split"] for _, row in rows})
        if len(splits) != 1:
            raise LayoutError(f"split: expected one split in a file, got {', '.join(map(repr, splits))}")
        return splits[0], _paired_deltas(rows)
    except UnicodeDecodeError:
        raise DebiaslabError(f"{path}: not a CSV (not UTF-8 text)") from None
    except (LayoutError, csv.Error) as err:
        raise DebiaslabError(f"{path}: {err}") from None


PAIRED_HEADER = ["variant", "method", "reference", "metric", "n seeds", "reference mean ± sd",
                 "method mean ± sd", "mean Δ [95% t-interval]", "excludes 0"]
EXCLUDES_ZERO = {True: "yes", False: "no", None: "n/a"}  # None: one seed, no interval


def _paired_table(path: Path, label: str) -> Table:
    """The statistics are paired.py's own (summarize, its number formats), recomputed from the tidy
    CSV, so the report and ``paired table`` cannot disagree."""
    paired = _paired()
    split, deltas = read_paired_csv(path)
    rows = [[s.variant, s.method, s.reference, s.metric, str(s.delta.n),
             paired.mean_sd_text(s.reference_mean, s.reference_sd),
             paired.mean_sd_text(s.method_mean, s.method_sd), paired.interval_text(s.delta),
             EXCLUDES_ZERO[s.delta.excludes_zero]]
            for s in paired.summarize(deltas, confidence=0.95)]
    return Table(f"{path.stem} (split {split})", PAIRED_HEADER, rows,
                 f"From {label} (python -m debiaslab.paired table). Δ = method − reference per seed, both "
                 "trained with that seed in the same DVC experiment; mean Δ with its 95% t-interval over "
                 "the seeds (df = n − 1; n/a with one seed); mean ± sample standard deviation over the "
                 "same seeds.")


def _grid_table(path: Path, label: str) -> Table | None:
    """A ``paired grid`` CSV (told apart by its header) as latent_grid lays it out, or None for a
    file of another layout."""
    from . import latent_grid  # imports paired: see _paired

    try:
        text = Path(path).read_text()
    except UnicodeDecodeError:
        raise DebiaslabError(f"{path}: not a CSV (not UTF-8 text)") from None
    if text.partition("\n")[0].strip() != ",".join(latent_grid.GRID_COLUMNS):
        return None
    try:
        header, rows = latent_grid.grid_table(latent_grid.read_grid_csv(text))
    except (ValueError, csv.Error) as err:
        raise DebiaslabError(f"{path}: {err}") from None
    return Table(f"{path.stem}: the GAN chain, variant by variant", header, rows,
                 f"From {label} (python -m debiaslab.paired grid). {latent_grid.GRID_NOTE}")


def paired_tables(reports_root: Path) -> list[Table]:
    """reports/paired/NAME.csv: one table per file, a paired Δ table or a grid by its header;
    hidden files (an atomic write) are skipped."""
    tables = []
    for path in metrics_files(reports_root, "paired/*.csv"):
        label = f"{reports_root.name}/{path.relative_to(reports_root).as_posix()}"
        tables.append(_grid_table(path, label) or _paired_table(path, label))
    return tables


# ----------------------------------------------------------------------------- sections
FAIRNESS_TEXT = (
    "Each row is one classifier (method × target attribute) on the test split, measured against one "
    "protected attribute. AP (average precision) and accuracy say how well it predicts the target: "
    "higher is better. DEO, the difference in equal opportunity |TPR(g=0) − TPR(g=1)|, the EO gap "
    "(the largest distance of a group's TPR or FPR from the overall rate) and the DP gap (the same for "
    "the rate of positive predictions) say how differently the two groups are treated: 0 is equal "
    "treatment, lower is better. BA, directional bias amplification, is positive when the classifier "
    "exaggerates the training data's target–protected correlation, 0 when it only reproduces it and "
    "negative when it weakens it: lower is better down to 0 (below 0 it over-corrects). KL is the mean "
    "of four KL divergences between the two groups' score distributions (positives and negatives, both "
    "directions): 0 means both groups get the same scores, lower is better. KL (original) is the same "
    "divergences aggregated as Ramaswamy et al.'s code does: the median of all four over every bootstrap "
    "resample, ± 2 standard deviations of them (their paper's KL column). Brackets hold 95% "
    "bootstrap intervals; methods whose intervals overlap widely are not clearly different.")
GAN_TEXT = (
    "The GAN chain (Ramaswamy et al., CVPR 2021) edits a latent z so that G(z') shows the other "
    "protected group with the same target, then trains on those pairs. Latent hyperplanes: held-out "
    "accuracy of the linear SVMs that separate the hallucinated labels in latent space (0.5 means the "
    "attribute is not linearly encoded; higher is better) and cos(w_t, w_g), the alignment of the target "
    "and protected hyperplanes (0 is independent; near ±1 an edit must travel far to change one and "
    "keep the other). Edited pairs: how often G(z') has the other protected label than G(z) ('flipped', "
    "higher is better; the paper aims at 80 %) and the same target label ('target kept', higher is "
    "better; aim 90 %), by up to three judges: the baseline classifiers, on SynthFaces an oracle trained "
    "on unbiased data, and with the renderer generator the truth (its exact labels of G(z'), no "
    "classifier involved). Hallucinated labels: the baseline classifiers' positive rate on G(z) and their "
    "agreement with the oracle and the truth (higher means the labels the edits rely on are more "
    "trustworthy); 'SVM labels' says whether the hyperplanes were fitted on those hallucinated labels or, "
    "as a diagnostic, on the renderer's ground truth. "
    "Inversion: reconstruction error of real images found in the latent space (lower is better) and "
    "their mean latent norm (about √d for a typical N(0, I) latent).")
LEAKAGE_TEXT = (
    "Leakage (Wang et al., ICCV 2019) is the accuracy of an attacker network that predicts the "
    "protected attribute from a vector of labels or model outputs, on subsamples balanced in the "
    "protected attribute: 0.5 means nothing leaks, 1.0 that it is fully recoverable. The first row is "
    "dataset leakage λ_D from the ground-truth labels. Each model row gives its mAP and macro-F1 "
    "(higher is better), its model leakage λ_M (lower is better), λ_D(F1), the leakage of ground-truth "
    "labels randomly perturbed down to the model's F1, and the amplification Δ = λ_M − λ_D(F1): above 0 "
    "the model leaks more than its accuracy alone explains; lower is better.")
DEBIAS_TEXT = (
    "Colored Digits: digit images whose colour matches the class in all but 0.5–5 % of the training "
    "images (the severity: % bias-conflicting). ERM learns the colour; LfF up-weights the images a "
    "deliberately biased model gets wrong, DisEnt also swaps disentangled features to augment them, "
    "and their _be variants first let a BiasEnsemble (Lee et al., "
    "AAAI 2023) pick out the bias-aligned images. Test accuracy is on a test split whose colours are "
    "independent of the class (higher is better); bias-aligned and bias-conflicting accuracy split it by "
    "whether colour and class agree, and a small gap between the two means the model relies on the "
    "digit's shape rather than its colour. BiasEnsemble selection: aligned precision is the share of "
    "the images it selected as bias-aligned that truly are, conflicting recall the share of the truly "
    "bias-conflicting images it left out; higher is better for both. A named set such as 'faces' runs "
    "the same methods on SynthFaces, with a binary target and bias attribute (faces_bias in "
    "params.yaml); its test split is as biased as its training split, so overall accuracy rewards "
    "the bias there: read the bias-conflicting accuracy next to the aligned one.")

PAIRED_TEXT = (
    "One run of one seed says little: a method can beat the baseline by chance. Here the reference "
    "(the baseline; for Colored Digits the method without BiasEnsemble) and the method were trained "
    "with the same seed in the same DVC experiment, once per seed, and each row is the per-seed "
    "difference Δ = method − reference averaged over the seeds, with its 95% t-interval. An interval "
    "that excludes 0 is evidence of a real effect; one that contains it is not (more seeds narrow it). "
    "The sign to hope for depends on the metric: AP and accuracies are better higher (Δ > 0), the "
    "fairness gaps DEO, EO_gap and KL better lower (Δ < 0), BA better nearer 0. A variant is one "
    "experiment name (e.g. a generator × label source); a table may hold several. A grid puts the GAN "
    "chain's variants side by side, with what the chain did on the way (SVM accuracy, cos(w_t, w_g), "
    "label agreement, flipped/kept by each judge) above what it achieved, to show where it fails.")

# Sections built from the metrics folder, then those built from the reports folder.
SECTIONS: tuple[tuple[str, str, str, Callable[[Path], list[Table]]], ...] = (
    ("fairness", "Fairness of the target classifiers", FAIRNESS_TEXT, fairness_tables),
    ("gan", "GAN latent-space edits (diagnostics)", GAN_TEXT, gan_tables),
    ("leakage", "Leakage", LEAKAGE_TEXT, leakage_section),
    ("debias", "Bias-conflicting benchmarks: BiasEnsemble, LfF and DisEnt", DEBIAS_TEXT, debias_tables),
)
REPORT_SECTIONS: tuple[tuple[str, str, str, Callable[[Path], list[Table]]], ...] = (
    ("paired", "Paired seeds (method − baseline, same seed)", PAIRED_TEXT, paired_tables),
)
# First folder under reports/ -> section; plots appear in this order within a section.
PLOT_SECTIONS = {"compare": "fairness", "evaluate": "fairness", "fair": "fairness",
                 "pairs": "gan", "gan": "gan", "leakage": "leakage",
                 "debias": "debias", "bias_ensemble": "debias"}


def collect_plots(reports_root: str | Path) -> dict[str, list[Plot]]:
    """Every PNG in the stage folders of ``PLOT_SECTIONS`` (the report stage's dependencies, so
    DVC reruns it when one changes; reports/sweeps, written from experiments, is left out). Hidden
    files (an atomic write in progress) are skipped."""
    reports_root = Path(reports_root)
    folders = list(PLOT_SECTIONS)
    out: dict[str, list[Plot]] = {}
    found = [p for folder in folders for p in (reports_root / folder).rglob("*.png")
             if not any(part.startswith(".") for part in p.relative_to(reports_root).parts)]
    for path in found:
        rel = path.relative_to(reports_root)
        section = PLOT_SECTIONS[rel.parts[0]]
        plot = Plot(path, rel.as_posix(), f"{reports_root.name}/{rel.as_posix()}")
        out.setdefault(section, []).append(plot)
    for plots in out.values():
        plots.sort(key=lambda p: (folders.index(p.rel.split("/")[0]) if p.rel.split("/")[0] in folders
                                  else len(folders), plot_method_rank(p.rel), p.rel))
    return out


def plot_method_rank(rel: str) -> int:
    """The position of a plot's method in the tables' order (baseline first), from its path:
    ``evaluate/METHOD/T_scores.png`` or ``fair/METHOD_T.png``; the longest name that matches wins
    (augmented_inversion, not augmented). Plots of no known method come last."""
    names = (*METHODS, *DEBIAS_METHODS)
    parts = rel.split("/")
    matches = [m for m in names if m in parts[1:-1] or parts[-1].startswith(m + "_")]
    return names.index(max(matches, key=len)) if matches else len(names)


def collect(metrics_root: str | Path, reports_root: str | Path | None = None, *,
            categories: dict[str, list[str]] | None = None, protected: str | None = None) -> list[Section]:
    """The report's sections, in order; a section with neither tables nor plots is left out.
    ``categories`` ({name: [targets]}, with the ``protected`` attribute) adds the GAN paper's
    per-category table to the fairness section."""
    reports = Path(reports_root) if reports_root is not None and Path(reports_root).is_dir() else None
    plots = collect_plots(reports) if reports else {}
    builds = [(spec, Path(metrics_root)) for spec in SECTIONS]
    builds += [(spec, reports) for spec in REPORT_SECTIONS] if reports else []
    sections = [Section(key, title, text, build(root), plots.get(key, []))
                for (key, title, text, build), root in builds]
    if categories and protected:
        by_key = {s.key: s for s in sections}
        if "fairness" in by_key:
            by_key["fairness"].tables += category_table(Path(metrics_root), categories, protected)
    return [s for s in sections if s.tables or s.plots]


# ----------------------------------------------------------------------------- rendering
TITLE = "debiaslab results report"
EMPTY = "No metrics yet: run `dvc repro`."


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(t: Table) -> str:
    lines = ["| " + " | ".join(map(_md_cell, t.header)) + " |", "|" + "---|" * len(t.header)]
    lines += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in t.rows]
    return "\n".join(lines)


def render_markdown(sections: list[Section]) -> str:
    """The report as Markdown; plots are linked by their path relative to the reports folder."""
    out = [f"# {TITLE}", "",
           "Written by the `report` stage from the JSON files under metrics/ and the plots under "
           "reports/; `reports/index.html` is the same report with the plots embedded.", "",
           "What changed since the previous commit: `python -m debiaslab.changes` (reports/changes.md).", ""]
    if not sections:
        out += [EMPTY, ""]
    for s in sections:
        out += [f"## {s.title}", "", f"*How to read this:* {s.how_to_read}", ""]
        for t in s.tables:
            out += [f"### {t.title}", "", markdown_table(t), ""]
            if t.note:
                out += [f"*{t.note}*", ""]
        if s.plots:
            out += ["### Plots", ""]
            out += [f"![{p.label}]({p.rel})  \n*{p.label}*\n" for p in s.plots]
    return "\n".join(out).rstrip() + "\n"


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 80rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td { font-variant-numeric: tabular-nums; }
p.read { background: #f7f7fb; border-left: 3px solid #88a; padding: 0.5rem 0.75rem; }
p.note { font-size: 0.85rem; color: #555; margin-top: 0.2rem; }
figure { display: inline-block; margin: 0.5rem 1rem 1rem 0; vertical-align: top; }
figure img { max-width: 38rem; border: 1px solid #ddd; }
figcaption { font-size: 0.8rem; color: #555; font-family: monospace; }
"""


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


def html_table(t: Table) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in r) + "</tr>\n" for r in t.rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def html_figure(p: Plot) -> str:
    data = base64.b64encode(p.path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(p.label)}">'
            f"<figcaption>{_esc(p.label)}</figcaption></figure>")


def render_html(sections: list[Section]) -> str:
    """The report as one HTML page: inline style, every plot embedded as a base64 data: URI, no
    scripts and no link to any other file. Non-ASCII text is written as character references."""
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{_esc(TITLE)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
             f"<h1>{_esc(TITLE)}</h1>",
             "<p>Written by the <code>report</code> stage from the JSON files under metrics/ and the "
             "plots under reports/.</p>",
             "<p>What changed since the previous commit: <code>python -m debiaslab.changes</code> "
             "(reports/changes.md).</p>"]
    if sections:
        parts.append("<nav><ul>" + "".join(f'<li><a href="#{s.key}">{_esc(s.title)}</a></li>'
                                           for s in sections) + "</ul></nav>")
    else:
        parts.append(f"<p>{_esc(EMPTY)}</p>")
    for s in sections:
        parts += [f'<section id="{s.key}">', f"<h2>{_esc(s.title)}</h2>",
                  f'<p class="read"><strong>How to read this:</strong> {_esc(s.how_to_read)}</p>']
        for t in s.tables:
            parts += [f"<h3>{_esc(t.title)}</h3>", html_table(t)]
            if t.note:
                parts.append(f'<p class="note">{_esc(t.note)}</p>')
        if s.plots:
            parts += ["<h3>Plots</h3>", "<div>", *map(html_figure, s.plots), "</div>"]
        parts.append("</section>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts).encode("ascii", "xmlcharrefreplace").decode("ascii")
