"""The results report: the right rows and intervals from the metrics JSON, Wilson intervals only
where the JSON says how many samples there were, missing sections left out, one self-contained
HTML page, and a one-line error for a broken metrics file."""

import base64
import json
import os
import re
import subprocess
import sys

import pytest
from conftest import REPO
from PIL import Image

from debiaslab.errors import DebiaslabError
from debiaslab.report import (
    collect,
    debias_tables,
    fairness_tables,
    pairs_table,
    render_html,
    render_markdown,
    wilson,
)


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def ci(v, d=0.1):
    return {"value": v, "median": v, "lo": v - d, "hi": v + d}


def evaluation(ap, deo, attrs=("Eyeglasses",)):
    return {"test": {"AP": ci(ap), "accuracy": ci(0.8, 0.02),
                     **{a: {"DEO": ci(deo), "BA": ci(0.03, 0.01), "KL": ci(2.0, 0.5), "EO_gap": ci(0.25)}
                        for a in attrs}},
            "n_test": 2000, "n_boot": 500}


def png(path, colour=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (3, 2), colour).save(path)
    return path.read_bytes()


# ----------------------------------------------------------------------------- Wilson
def test_wilson_matches_hand_computed_values():
    # 8 of 10, z = 1.96: z²/n = 0.38416; centre = (0.8 + 0.19208) / 1.38416 = 0.716738;
    # half = 1.96 / 1.38416 * sqrt(0.8 * 0.2 / 10 + 0.38416 / 40) = 1.416021 * 0.160012 = 0.226581
    lo, hi = wilson(0.8, 10, z=1.96)
    assert lo == pytest.approx(0.490157, abs=1e-5)
    assert hi == pytest.approx(0.943319, abs=1e-5)
    # 0 of 10: the interval starts at 0 and ends at (z²/n) / (1 + z²/n) = 0.38416 / 1.38416
    assert wilson(0.0, 10, z=1.96) == pytest.approx((0.0, 0.277540), abs=1e-5)
    # the default is the exact 97.5% normal quantile, a hair below 1.96
    assert wilson(0.8, 10) == pytest.approx((0.490162, 0.943318), abs=1e-5)
    with pytest.raises(ValueError):
        wilson(0.5, 0)


# ----------------------------------------------------------------------------- tables
def test_fairness_rows_are_method_target_protected_with_intervals(tmp_path):
    write(tmp_path / "evaluate/fairbatch/Smiling.json", evaluation(0.97, 0.15, ("Eyeglasses", "Male")))
    write(tmp_path / "evaluate/baseline/Smiling.json", evaluation(0.99, 0.48, ("Eyeglasses", "Male")))
    [table] = fairness_tables(tmp_path)
    assert table.header[:4] == ["method", "target", "protected", "AP"]
    assert [r[:3] for r in table.rows] == [["baseline", "Smiling", "Eyeglasses"],
                                           ["fairbatch", "Smiling", "Eyeglasses"],
                                           ["baseline", "Smiling", "Male"],
                                           ["fairbatch", "Smiling", "Male"]]
    base = dict(zip(table.header, table.rows[0], strict=True))
    assert base["AP"] == "0.990 [0.890, 1.090]"
    assert base["accuracy"] == "0.800 [0.780, 0.820]"
    assert base["DEO"] == "0.480 [0.380, 0.580]"
    assert base["EO gap"] == "0.250 [0.150, 0.350]"
    assert base["DP gap"] == "-"  # not in this JSON: shown as missing, not invented
    assert "500 resamples of the 2,000 test images" in table.note


def test_test_accuracy_gets_a_wilson_interval_only_when_n_is_recorded(tmp_path):
    accs = {"accuracy": 0.5, "aligned_accuracy": 0.9, "conflicting_accuracy": 0.45}
    write(tmp_path / "debias/1.0/erm.json", {"test": accs})
    write(tmp_path / "debias/faces/erm.json", {"test": accs})
    without_n = {t.title: t for t in debias_tables(tmp_path)}
    digits = without_n["Colored Digits: test accuracy (rows: % bias-conflicting training images)"]
    assert digits.rows == [["1.0 %", "0.500"]]
    assert "values alone" in digits.note
    assert without_n["Bias set 'faces': test accuracy"].rows == [["erm", "0.500", "0.900", "0.450"]]

    write(tmp_path / "colored_digits.json", {"n_test": 100})
    with_n = {t.title: t for t in debias_tables(tmp_path)}
    # 50 of 100: centre 0.5, half = 1.96 / 1.038416 * sqrt(0.0025 + 3.8416 / 40000) = 0.0962
    assert with_n[digits.title].rows == [["1.0 %", "0.500 [0.404, 0.596]"]]
    assert with_n["Colored Digits: bias-aligned / bias-conflicting test accuracy"].rows == [
        ["1.0 %", "0.900 / 0.450"]]
    assert with_n["Bias set 'faces': test accuracy"].rows == [["erm", "0.500", "0.900", "0.450"]]


def test_pair_proportions_use_the_pairs_of_one_edit(tmp_path):
    edit = {"target_kept": 0.5, "Eyeglasses_flipped": 0.5, "Male_kept": 1.0}
    write(tmp_path / "pairs/Smiling.json",
          {"n_pairs": 200, "baseline": {"flip_g1": edit, "flip_g2": edit}})  # 100 pairs per edit
    [table] = pairs_table(tmp_path)
    assert table.rows[0] == ["Smiling", "flip_g1", "baseline", "100", "0.500 [0.404, 0.596]",
                             "Eyeglasses flipped 0.500 [0.404, 0.596]; Male kept 1.000 [0.963, 1.000]"]
    assert [r[2] for r in table.rows] == ["baseline", "baseline"]  # no oracle in the JSON, no row


def test_a_file_without_the_expected_keys_is_named(tmp_path):
    write(tmp_path / "evaluate/baseline/Smiling.json", {"val": {}})
    with pytest.raises(DebiaslabError, match=r"evaluate/baseline/Smiling\.json: unexpected layout"):
        fairness_tables(tmp_path)


# ----------------------------------------------------------------------------- sections
def test_missing_sections_are_omitted(tmp_path):
    write(tmp_path / "leakage.json", {
        "protected": "Eyeglasses", "dataset_leakage": {"mean": 0.9, "std": 0.01},
        "models": {"erm": {"mAP": 0.99, "macro_F1": 0.98, "model_leakage": {"mean": 0.95, "std": 0.02},
                           "natural_leakage_at_F1": 0.88, "amplification": 0.07}}})
    write(tmp_path / "oracle.json", {"enabled": False})
    sections = collect(tmp_path, tmp_path / "no_reports")
    assert [s.key for s in sections] == ["leakage"]
    assert [t.title for t in sections[0].tables] == ["Leakage of Eyeglasses"]
    assert sections[0].tables[0].rows[1] == ["erm", "0.990", "0.980", "0.950 ± 0.020", "0.880", "+0.070"]
    md = render_markdown(sections)
    assert "## Leakage" in md and "*How to read this:*" in md
    for absent in ("Fairness", "GAN", "Bias-conflicting", "Oracle", "Plots"):
        assert absent not in md


# ----------------------------------------------------------------------------- rendering
def test_html_is_self_contained_and_embeds_the_plots(tmp_path):
    write(tmp_path / "metrics/evaluate/baseline/Smiling.json", evaluation(0.99, 0.48))
    reports = tmp_path / "reports"
    data = png(reports / "evaluate/baseline/Smiling_scores.png")
    png(reports / "sweeps/skew_sweep.png", (0, 0, 255))  # not a stage output: not read
    png(reports / "evaluate/.Smiling_scores.png.tmp-123.png")  # an atomic write in progress: skipped
    page = render_html(collect(tmp_path / "metrics", reports))

    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 1
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert base64.b64decode(sources[0].removeprefix("data:image/png;base64,")) == data
    assert "<link" not in page and "<script" not in page and "url(" not in page
    assert set(re.findall(r'href="([^"]*)"', page)) == {"#fairness"}
    assert "<figcaption>reports/evaluate/baseline/Smiling_scores.png</figcaption>" in page
    assert "skew_sweep" not in page
    assert "0.480 [0.380, 0.580]" in page
    assert page.isascii()  # non-ASCII text as character references: no encoding to get wrong


def test_markdown_links_plots_relative_to_the_reports_folder(tmp_path):
    write(tmp_path / "metrics/evaluate/baseline/Smiling.json", evaluation(0.99, 0.48))
    png(tmp_path / "reports/pairs/Smiling.png")
    md = render_markdown(collect(tmp_path / "metrics", tmp_path / "reports"))
    assert "![reports/pairs/Smiling.png](pairs/Smiling.png)" in md
    assert "| baseline | Smiling | Eyeglasses | 0.990 [0.890, 1.090] |" in md
    # the pairs plot belongs to the GAN section even though its metrics are absent
    assert md.index("## GAN latent-space edits") > md.index("## Fairness")


# ----------------------------------------------------------------------------- the stage
def run_report(workdir):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, str(REPO / "stages" / "report.py")], cwd=workdir,
                          capture_output=True, text=True, timeout=120, env=env)


def test_stage_writes_both_files_when_sections_are_missing(tmp_path):
    write(tmp_path / "metrics/evaluate/baseline/Smiling.json", evaluation(0.99, 0.48))
    png(tmp_path / "reports/compare/Smiling_ap_vs_deo.png")
    proc = run_report(tmp_path)
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "reports/summary.md").read_text()
    assert "## Fairness of the target classifiers" in md and "## Leakage" not in md
    assert 'src="data:image/png;base64,' in (tmp_path / "reports/index.html").read_text()


def test_stage_reports_malformed_json_in_one_line(tmp_path):
    write(tmp_path / "metrics/evaluate/baseline/Smiling.json", evaluation(0.99, 0.48))
    (tmp_path / "metrics/leakage.json").write_text('{"protected": "Eyeglasses",')
    proc = run_report(tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: report: metrics/leakage.json: not valid JSON")
    assert not (tmp_path / "reports/summary.md").exists()
    assert not (tmp_path / "reports/index.html").exists()
