"""The results report: every metrics file under metrics/ as tables, the plots under reports/, in
Markdown (``reports/summary.md``) and in one self-contained HTML page (``reports/index.html``).

Pure functions: :func:`collect` reads the JSON files and lists the plots, :func:`render_markdown`
and :func:`render_html` turn that into text. A section whose metrics files are absent (a profile
that skips a chain, a pipeline not yet run) is left out. Intervals are the 95% intervals the JSON
holds (bootstrap, from the evaluate stage); a proportion over a number of samples the JSON records
gets a Wilson score interval (:func:`wilson`); any other number is shown alone, and the table's
note says so.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from .errors import DebiaslabError

T = TypeVar("T")

Z95 = 1.959963984540054  # standard normal quantile at 0.975
METHODS = ("baseline", "augmented", "augmented_inversion", "fairbatch", "drfairness")
DEBIAS_METHODS = ("erm", "lff", "lff_be", "disent", "disent_be")


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


def ci(m: dict | None, digits: int = 3) -> str:
    """``value [lo, hi]`` of a ``{value, lo, hi}`` entry; "-" when the entry is missing."""
    if m is None:
        return "-"
    return f"{fmt(m['value'], digits)} [{fmt(m['lo'], digits)}, {fmt(m['hi'], digits)}]"


def proportion(p: float | None, n: int | None, digits: int = 3) -> str:
    """``p [lo, hi]`` with the Wilson interval when ``n`` is known, else ``p`` alone."""
    if n is None or p is None or (isinstance(p, float) and math.isnan(p)):
        return fmt(p, digits)
    lo, hi = wilson(p, n)
    return f"{fmt(p, digits)} [{fmt(lo, digits)}, {fmt(hi, digits)}]"


def mean_sd(m: dict) -> str:
    return f"{m['mean']:.3f} ± {m['std']:.3f}"


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


def parse(path: Path, build: Callable[[dict], T]) -> T:
    """``build`` applied to the metrics file ``path``; a file without the keys (or types) it needs
    is a one-line DebiaslabError naming the file, as a file that is not JSON is."""
    report = read_json(path)
    try:
        return build(report)
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise DebiaslabError(f"{path}: unexpected layout ({type(err).__name__}: {err}); "
                             "rerun the stage that writes it") from None


def one_file(name: str, build: Callable[[dict], list[Table]]) -> Callable[[Path], list[Table]]:
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
def _fairness_rows(method: str, target: str, report: dict) -> list[list[str]]:
    test = report["test"]
    return [[method, target, attr, ci(test["AP"]), ci(test["accuracy"]), ci(m["DEO"]), ci(m["BA"]),
             ci(m["KL"]), ci(m.get("EO_gap")), ci(m.get("DP_gap"))]
            for attr, m in test.items() if isinstance(m, dict) and "DEO" in m]


def fairness_tables(root: Path) -> list[Table]:
    """metrics/evaluate/METHOD/TARGET.json: one row per method × target × protected attribute."""
    rows, sizes = [], set()
    for path in sorted(root.glob("evaluate/*/*.json")):
        file_rows, size = parse(path, lambda r, p=path: (_fairness_rows(p.parent.name, p.stem, r),
                                                         (r.get("n_test"), r.get("n_boot"))))
        rows += file_rows
        sizes.add(size)
    if not rows:
        return []
    order = method_order(METHODS)
    rows.sort(key=lambda r: (r[1], r[2], order(r[0])))
    note = "Every cell: value on the full test set [95% bootstrap percentile interval]"
    if len(sizes) == 1 and None not in next(iter(sizes)):
        n_test, n_boot = next(iter(sizes))
        note += f" ({n_boot} resamples of the {n_test:,} test images)"
    return [Table("Fairness on test, per method",
                  ["method", "target", "protected", "AP", "accuracy", "DEO", "BA", "KL", "EO gap", "DP gap"],
                  rows, note + ".")]


# ----------------------------------------------------------------------------- GAN chain
def _names(d: dict) -> str:
    return ", ".join(f"{k} {fmt(v)}" for k, v in d.items()) or "-"


def _latent_row(target: str, latent: dict) -> list[str]:
    return [target, latent["variant"], f"{latent['n_fit']:,}", _names(latent["svm_heldout_accuracy"]),
            f"{latent['cos_wt_wg']:+.3f}", _names(latent.get("mean_edit_distance", {}))]


def latent_table(root: Path) -> list[Table]:
    rows = [parse(path, lambda r, p=path: _latent_row(p.stem, r))
            for path in sorted(root.glob("latent/*.json"))]
    if not rows:
        return []
    return [Table("Latent hyperplanes (fit_hyperplanes)",
                  ["target", "variant", "latents fitted", "SVM held-out accuracy", "cos(w_t, w_g)",
                   "mean ‖z' − z‖ per edit"], rows,
                  "Values alone: the JSON does not record how many latents the held-out accuracy was "
                  "measured on, so no interval is given.")]


def _pairs_rows(target: str, pairs: dict) -> list[list[str]]:
    rows = []
    for judge in ("baseline", "oracle"):
        edits = pairs.get(judge)
        if not edits:  # no oracle on real CelebA
            continue
        per_edit = pairs["n_pairs"] / len(edits)  # generate_pairs: the same latents for every edit
        n = int(per_edit) if per_edit.is_integer() and per_edit > 0 else None
        for edit, d in edits.items():
            others = [f"{k.rsplit('_', 1)[0]} {k.rsplit('_', 1)[1]} {proportion(v, n)}"
                      for k, v in d.items() if k != "target_kept"]
            rows.append([target, edit, judge, f"{n:,}" if n else "-", proportion(d["target_kept"], n),
                         "; ".join(others)])
    return rows


def pairs_table(root: Path) -> list[Table]:
    rows = [row for path in sorted(root.glob("pairs/*.json"))
            for row in parse(path, lambda r, p=path: _pairs_rows(p.stem, r))]
    if not rows:
        return []
    return [Table("Edited pairs G(z) → G(z') (generate_pairs)",
                  ["target", "edit", "judge", "pairs", "target kept", "protected attributes"], rows,
                  "Proportions over the pairs of one edit (n_pairs / number of edits), with 95% Wilson "
                  "intervals; a '-' in 'pairs' means that count is unknown and the value stands alone.")]


def _hallucinate(report: dict) -> list[Table]:
    n = report.get("n_images")
    attrs = {k: v for k, v in report.items() if isinstance(v, dict) and "positive_rate" in v}
    rows = [[a, fmt(d.get("f1_threshold")), proportion(d["positive_rate"], n),
             proportion(d.get("oracle_agreement"), n)] for a, d in attrs.items()]
    where = (f"95% Wilson intervals over the {n:,} generated images" if n
             else "values alone: the JSON does not record the number of images")
    tables = [Table("Hallucinated labels of G(z) (hallucinate)",
                    ["attribute", "F1 threshold", "positive rate", "agreement with oracle"], rows,
                    f"Proportions: {where}.")]
    cells = []
    for key, counts in report.items():
        if key.startswith("cells_") and isinstance(counts, dict):
            rest = key.removeprefix("cells_")
            pair = next((f"{t} × {g}" for t in attrs for g in attrs if f"{t}_{g}" == rest), rest)
            cells.append([pair, *(f"{counts[c]:,}" for c in ("t0_g0", "t0_g1", "t1_g0", "t1_g1"))])
    if cells:
        tables.append(Table("Generated images per (target, protected) cell (hallucinated labels)",
                            ["target × protected", "t0 g0", "t0 g1", "t1 g0", "t1 g1"], cells,
                            "Counts of G(z) by the labels the baseline classifiers gave them."))
    return tables


def _oracle(report: dict) -> list[Table]:
    if not report.get("enabled", True):  # real CelebA: no oracle
        return []
    held, real = report["heldout_unbiased_accuracy"], report.get("real_test_accuracy", {})
    return [Table("Oracle judge (oracle)",
                  ["attribute", "accuracy, unbiased held-out", "accuracy, real test"],
                  [[a, fmt(acc), fmt(real.get(a))] for a, acc in held.items()],
                  "Values alone: the JSON does not record how many images each accuracy is over, "
                  "so no interval is given.")]


def _inversion(report: dict) -> list[Table]:
    row = [f"{report['n_images']:,}", str(report["steps"]), f"{report['mse_mean']:.4f}",
           fmt(report.get("mse_median"), 4), fmt(report["latent_norm_mean"], 2)]
    return [Table("Inversion of real images (invert_latents)",
                  ["images", "steps", "MSE, mean", "MSE, median", "mean ‖z‖"], [row],
                  "Means over the inverted images (pixels in [−1, 1]); no interval: the JSON holds no "
                  "spread.")]


hallucinate_tables = one_file("hallucinate.json", _hallucinate)
oracle_table = one_file("oracle.json", _oracle)
inversion_table = one_file("inversion.json", _inversion)


def gan_tables(root: Path) -> list[Table]:
    return [*latent_table(root), *pairs_table(root), *hallucinate_tables(root), *oracle_table(root),
            *inversion_table(root)]


# ----------------------------------------------------------------------------- leakage
def _leakage(report: dict) -> list[Table]:
    rows = [["(ground-truth labels)", "-", "-", mean_sd(report["dataset_leakage"]), "-", "-"]]
    for name, m in report["models"].items():
        rows.append([name, fmt(m["mAP"]), fmt(m["macro_F1"]), mean_sd(m["model_leakage"]),
                     fmt(m["natural_leakage_at_F1"]), f"{m['amplification']:+.3f}"])
    rounds = report.get("attacker", {}).get("rounds")
    spread = f"{rounds} attacker rounds" if rounds else "the attacker rounds"
    return [Table(f"Leakage of {report['protected']}",
                  ["model", "mAP", "macro-F1", "leakage λ", "λ_D(F1)", "Δ = λ_M − λ_D(F1)"], rows,
                  f"Leakage is mean ± standard deviation over {spread}, not a confidence interval; mAP, "
                  "macro-F1 and Δ are single values (the JSON does not record the number of test "
                  "images, so no interval is given).")]


leakage_tables = one_file("leakage.json", _leakage)


# ----------------------------------------------------------------------------- BiasEnsemble
def debias_results(root: Path) -> dict[str, dict[str, dict]]:
    """metrics/debias/SET/METHOD.json as {set: {method: test accuracies}}, sets and methods ordered."""
    out: dict[str, dict[str, dict]] = {}
    by_method = method_order(DEBIAS_METHODS)
    paths = sorted(root.glob("debias/*/*.json"), key=lambda p: (set_order(p.parent.name), by_method(p.stem)))
    keys = ("accuracy", "aligned_accuracy", "conflicting_accuracy")
    for path in paths:
        accuracies = parse(path, lambda r: {k: r["test"][k] for k in keys})
        out.setdefault(path.parent.name, {})[path.stem] = accuracies
    return out


def colored_digits_n_test(root: Path) -> int | None:
    path = root / "colored_digits.json"
    n = parse(path, lambda r: r.get("n_test")) if path.is_file() else None
    return n if isinstance(n, int) and n > 0 else None


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


def _selection_row(name: str, be: dict) -> list[str]:
    n_sel, n_train = be.get("n_selected"), be.get("n_train")
    frac = be.get("true_conflicting_fraction")
    n_conf = round(frac * n_train) if frac is not None and n_train else None
    return [f"{name} %" if is_severity(name) else name,
            f"{n_sel:,} / {n_train:,}" if n_sel is not None and n_train else "-",
            proportion(be["aligned_precision"], n_sel or None, digits=4),
            proportion(be["conflicting_recall"], n_conf or None, digits=4), fmt(frac)]


def selection_table(root: Path) -> list[Table]:
    rows = [parse(path, lambda r, p=path: _selection_row(p.stem, r))
            for path in sorted(root.glob("bias_ensemble/*.json"), key=lambda p: set_order(p.stem))]
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
    "directions): 0 means both groups get the same scores, lower is better. Brackets hold 95% "
    "bootstrap intervals; methods whose intervals overlap widely are not clearly different.")
GAN_TEXT = (
    "The GAN chain (Ramaswamy et al., CVPR 2021) edits a latent z so that G(z') shows the other "
    "protected group with the same target, then trains on those pairs. Latent hyperplanes: held-out "
    "accuracy of the linear SVMs that separate the hallucinated labels in latent space (0.5 means the "
    "attribute is not linearly encoded; higher is better) and cos(w_t, w_g), the alignment of the target "
    "and protected hyperplanes (0 is independent; near ±1 an edit must travel far to change one and "
    "keep the other). Edited pairs: how often G(z') has the other protected label than G(z) ('flipped', "
    "higher is better; the paper aims at 80 %) and the same target label ('target kept', higher is "
    "better; aim 90 %), by two judges: the baseline classifiers and, on SynthFaces, an oracle trained on "
    "unbiased data. Hallucinated labels: the baseline classifiers' positive rate on G(z) and their "
    "agreement with the oracle (higher means the labels the edits rely on are more trustworthy). "
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

SECTIONS: tuple[tuple[str, str, str, Callable[[Path], list[Table]]], ...] = (
    ("fairness", "Fairness of the target classifiers", FAIRNESS_TEXT, fairness_tables),
    ("gan", "GAN latent-space edits (diagnostics)", GAN_TEXT, gan_tables),
    ("leakage", "Leakage", LEAKAGE_TEXT, leakage_tables),
    ("debias", "Bias-conflicting benchmarks: BiasEnsemble, LfF and DisEnt", DEBIAS_TEXT, debias_tables),
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
                                  else len(folders), p.rel))
    return out


def collect(metrics_root: str | Path, reports_root: str | Path | None = None) -> list[Section]:
    """The report's sections, in order; a section with neither tables nor plots is left out."""
    metrics_root = Path(metrics_root)
    plots = collect_plots(reports_root) if reports_root is not None and Path(reports_root).is_dir() else {}
    sections = [Section(key, title, text, build(metrics_root), plots.get(key, []))
                for key, title, text, build in SECTIONS]
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
           "reports/; `reports/index.html` is the same report with the plots embedded.", ""]
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
             "plots under reports/.</p>"]
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
