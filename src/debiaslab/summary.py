"""``python -m debiaslab.summary``: the pipeline's headline numbers as short tables.

`dvc metrics show` lists every number of every file in one wide table; this prints the ones a
researcher reads first, from the same JSON files under metrics/.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _fmt(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _ci(m: dict) -> str:
    return f"{_fmt(m['value'])} [{_fmt(m['lo'])}, {_fmt(m['hi'])}]"


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def evaluate_section(root: Path) -> str | None:
    rows = []
    for path in sorted(root.glob("evaluate/*/*.json")):
        report = json.loads(path.read_text())
        test = report["test"]
        for attr, m in test.items():
            if isinstance(m, dict) and "DEO" in m:
                rows.append([path.parent.name, path.stem, attr, _ci(test["AP"]),
                             _fmt(test["accuracy"]["value"]), _ci(m["DEO"]), _ci(m["BA"]), _ci(m["KL"]),
                             _fmt(m["EO_gap"]["value"]) if "EO_gap" in m else "-"])
    if not rows:
        return None
    order = ["baseline", "augmented", "augmented_inversion", "fairbatch", "drfairness"]
    rows.sort(key=lambda r: (r[1], order.index(r[0]) if r[0] in order else len(order), r[0]))
    return "Fairness on test (value [95% bootstrap interval])\n" + table(
        ["method", "target", "protected", "AP", "accuracy", "DEO", "BA", "KL", "EO gap"], rows)


def gan_section(root: Path) -> str | None:
    """The latent-space method's diagnostics, per target: SVMs, angle, and what the edits did."""
    rows = []
    for path in sorted(root.glob("latent/*.json")):
        latent = json.loads(path.read_text())
        pairs_path = root / "pairs" / path.name
        pairs = json.loads(pairs_path.read_text()) if pairs_path.is_file() else {}
        acc = latent["svm_heldout_accuracy"]
        for judge in ("baseline", "oracle"):
            for edit, d in pairs.get(judge, {}).items():
                flipped = [f"{k.removesuffix('_flipped')} {v:.2f}" for k, v in d.items()
                           if k.endswith("_flipped")]
                rows.append([path.stem, latent["variant"], edit,
                             " / ".join(f"{v:.2f}" for v in acc.values()), f"{latent['cos_wt_wg']:+.2f}",
                             judge, _fmt(d["target_kept"], 2), ", ".join(flipped)])
    if not rows:
        return None
    return "GAN latent edits (SVM held-out accuracy: target / protected ...)\n" + table(
        ["target", "variant", "edit", "SVM accuracy", "cos(w_t,w_g)", "judge", "target kept", "flipped"],
        rows)


def leakage_section(root: Path) -> str | None:
    path = root / "leakage.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    d = report["dataset_leakage"]
    rows = [["(labels)", "-", "-", f"{d['mean']:.3f} ± {d['std']:.3f}", "-", "-"]]
    for name, m in report["models"].items():
        lm = m["model_leakage"]
        rows.append([name, _fmt(m["mAP"]), _fmt(m["macro_F1"]), f"{lm['mean']:.3f} ± {lm['std']:.3f}",
                     _fmt(m["natural_leakage_at_F1"]), f"{m['amplification']:+.3f}"])
    return f"Leakage of {report['protected']}\n" + table(
        ["model", "mAP", "macro-F1", "leakage", "λ_D(F1)", "Δ"], rows)


def debias_section(root: Path) -> str | None:
    rows = []
    def order(path: Path) -> tuple:  # severities numerically, then named sets such as faces
        name = path.parent.name
        return (0, float(name), "", path.stem) if name.replace(".", "").isdigit() \
            else (1, 0.0, name, path.stem)

    for path in sorted(root.glob("debias/*/*.json"), key=order):
        t = json.loads(path.read_text())["test"]
        be = root / "bias_ensemble" / f"{path.parent.name}.json"
        sel = json.loads(be.read_text()) if path.stem.endswith("_be") and be.is_file() else None
        name = path.parent.name
        rows.append([name + "%" if name.replace(".", "").isdigit() else name, path.stem, _fmt(t["accuracy"]),
                     _fmt(t["aligned_accuracy"]), _fmt(t["conflicting_accuracy"]),
                     _fmt(sel["aligned_precision"]) if sel else "-",
                     _fmt(sel["conflicting_recall"]) if sel else "-"])
    if not rows:
        return None
    return "Bias-conflicting benchmarks, test accuracy (Colored Digits: % conflicting; faces)\n" + table(
        ["set", "method", "test", "aligned", "conflicting", "BE precision", "BE recall"], rows)


def main(argv: list[str] | None = None) -> None:
    root = Path((argv or sys.argv[1:] or ["metrics"])[0])
    sections = [s for s in (evaluate_section(root), gan_section(root), leakage_section(root),
                            debias_section(root)) if s]
    print("\n\n".join(sections) if sections else f"no metrics under {root}/ yet: run `dvc repro`")


if __name__ == "__main__":
    main()
