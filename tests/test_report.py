"""The results report: the right rows and intervals from the metrics JSON, Wilson intervals only
where the JSON says how many samples there were, missing sections left out, one self-contained
HTML page, and a one-line error for a broken metrics file. Newer fields (the balanced test split,
the renderer's true labels, provenance) add rows or columns only where a file has them; the paired
seed comparisons of reports/paired/*.csv are recomputed with debiaslab.paired's statistics."""

import base64
import json
import os
import re
import subprocess
import sys

import pytest
from conftest import REPO
from PIL import Image

from debiaslab import paired
from debiaslab.errors import DebiaslabError
from debiaslab.paired import Delta, deltas_csv, summarize
from debiaslab.report import (
    collect,
    collect_plots,
    debias_tables,
    fairness_tables,
    paired_tables,
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


def evaluation(ap, deo, attrs=("Eyeglasses",), d=0.1):
    """``d``: the half-width of AP's, DEO's and EO_gap's intervals."""
    return {"test": {"AP": ci(ap, d), "accuracy": ci(0.8, 0.02),
                     **{a: {"DEO": ci(deo, d), "BA": ci(0.03, 0.01), "KL": ci(2.0, 0.5),
                            "KL_original": {"median": 1.9, "two_sigma": 0.4},
                            "EO_gap": ci(0.25, d)} for a in attrs}},
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


def test_the_balanced_split_is_a_second_table_and_its_absence_changes_nothing(tmp_path):
    write(tmp_path / "evaluate/fairbatch/Smiling.json", evaluation(0.97, 0.15))
    write(tmp_path / "evaluate/baseline/Smiling.json", evaluation(0.99, 0.48))
    [before] = fairness_tables(tmp_path)
    with_balanced = {**evaluation(0.99, 0.48), "balanced": evaluation(0.95, 0.05, d=0.01)["test"],
                     "n_balanced": 4000}
    write(tmp_path / "evaluate/baseline/Smiling.json", with_balanced)  # fairbatch: an older file
    test, balanced = fairness_tables(tmp_path)
    assert test == before
    assert balanced.title == "Fairness on the balanced test split (n = 4,000), per method"
    assert balanced.header == test.header
    assert balanced.rows == [["baseline", "Smiling", "Eyeglasses", "0.950 [0.940, 0.960]",
                              "0.800 [0.780, 0.820]", "0.050 [0.040, 0.060]", "0.030 [0.020, 0.040]",
                              "2.000 [1.500, 2.500]", "1.900 ± 0.400", "0.250 [0.240, 0.260]", "-"]]
    assert "500 resamples of the 4,000 balanced test images" in balanced.note


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
    with pytest.raises(DebiaslabError,
                       match=r"evaluate/baseline/Smiling\.json: test: missing \(expected an object\)$"):
        fairness_tables(tmp_path)


# ----------------------------------------------------------------------------- unexpected shapes
# One valid file of every kind the report reads; the tests below change one field at a time.
def valid_metrics() -> dict[str, dict]:
    """Fresh objects each call, nothing shared between files (a JSON round trip copies deeply)."""
    edit = {"target_kept": 0.5, "Eyeglasses_flipped": 0.5}
    judge = {"f1_threshold": 0.8, "positive_rate": 0.5, "oracle_agreement": 0.6}
    accs = {"accuracy": 0.5, "aligned_accuracy": 0.9, "conflicting_accuracy": 0.45}
    return json.loads(json.dumps({
        "evaluate/baseline/Smiling.json": evaluation(0.99, 0.48),
        "latent/Smiling.json": {"variant": "standard", "n_fit": 100, "cos_wt_wg": 0.31,
                                "svm_heldout_accuracy": {"Smiling": 0.8, "Eyeglasses": 0.97},
                                "mean_edit_distance": {"flip": 5.0}},
        "pairs/Smiling.json": {"n_pairs": 100, "baseline": {"flip": edit}, "oracle": {"flip": edit}},
        "hallucinate.json": {"n_images": 100, "Smiling": judge, "Eyeglasses": judge,
                             "cells_Smiling_Eyeglasses": {"t0_g0": 40, "t0_g1": 10, "t1_g0": 10,
                                                          "t1_g1": 40}},
        "oracle.json": {"enabled": True, "heldout_unbiased_accuracy": {"Smiling": 0.74},
                        "real_test_accuracy": {"Smiling": 0.7}},
        "inversion.json": {"n_images": 40, "steps": 5, "mse_mean": 0.02, "mse_median": 0.018,
                           "latent_norm_mean": 7.9},
        "leakage.json": {"protected": "Eyeglasses", "attacker": {"rounds": 2},
                         "dataset_leakage": {"mean": 0.9, "std": 0.01},
                         "models": {"erm": {"mAP": 0.99, "macro_F1": 0.98, "natural_leakage_at_F1": 0.88,
                                            "model_leakage": {"mean": 0.95, "std": 0.02},
                                            "amplification": 0.07}}},
        "colored_digits.json": {"n_test": 100},
        "debias/1.0/erm.json": {"test": accs},
        "debias/faces/erm.json": {"test": accs},
        "bias_ensemble/1.0.json": {"aligned_precision": 1.0, "conflicting_recall": 1.0, "n_selected": 95,
                                   "n_train": 100, "true_conflicting_fraction": 0.05},
    }))


DELETE = object()


def changed(files: dict, name: str, key_path: str, value) -> dict:
    """``files`` with one field of one file set to ``value`` (or removed: DELETE)."""
    *parents, last = key_path.split(".")
    d = files[name]
    for key in parents:
        d = d[key]
    if value is DELETE:
        del d[last]
    else:
        d[last] = value
    return files


def write_all(root, files: dict) -> None:
    for name, obj in files.items():
        write(root / name, obj)


def markdown(root) -> str:
    return render_markdown(collect(root))


EVAL, NUMBER_OR_CI = "evaluate/baseline/Smiling.json", "a number or {value, lo, hi}"
WRONG_SHAPES = [  # file, key path, value (DELETE: the key is missing), the message after "FILE: "
    (EVAL, "test.Eyeglasses.DEO", "abc", f"test.Eyeglasses.DEO: expected {NUMBER_OR_CI}, got 'abc'"),
    (EVAL, "test.Eyeglasses.DEO", DELETE, f"test.Eyeglasses.DEO: missing (expected {NUMBER_OR_CI})"),
    (EVAL, "test.Eyeglasses.KL", {"value": 2.0},
     "test.Eyeglasses.KL.lo: missing (expected a number or null)"),
    (EVAL, "test.Eyeglasses.EO_gap", "n/a", f"test.Eyeglasses.EO_gap: expected {NUMBER_OR_CI}, got 'n/a'"),
    (EVAL, "test.Eyeglasses.KL_original.median", "1.9",
     "test.Eyeglasses.KL_original.median: expected a number or null, got '1.9'"),
    (EVAL, "test.AP", None, f"test.AP: expected {NUMBER_OR_CI}, got null"),
    (EVAL, "test.AP", True, f"test.AP: expected {NUMBER_OR_CI}, got true"),
    (EVAL, "test.accuracy.lo", "0.78", "test.accuracy.lo: expected a number or null, got '0.78'"),
    (EVAL, "test.AP", [0.9, 0.8, 1.0], f"test.AP: expected {NUMBER_OR_CI}, got [0.9, 0.8, 1.0]"),
    (EVAL, "test", [1, 2], "test: expected an object, got [1, 2]"),
    (EVAL, "test.Eyeglasses", 0.5, "test.Eyeglasses: expected an object, got 0.5"),
    (EVAL, "test.Eyeglasses", DELETE,
     "test: expected at least one protected attribute (an object with DEO, BA, KL)"),
    (EVAL, "n_test", "2000", "n_test: expected a positive integer, got '2000'"),
    ("latent/Smiling.json", "n_fit", 100.0, "n_fit: expected a positive integer, got 100.0"),
    ("latent/Smiling.json", "svm_heldout_accuracy.Smiling", "high",
     "svm_heldout_accuracy.Smiling: expected a number, got 'high'"),
    ("latent/Smiling.json", "cos_wt_wg", None, "cos_wt_wg: expected a number, got null"),
    ("latent/Smiling.json", "variant", 1, "variant: expected a string, got 1"),
    ("pairs/Smiling.json", "baseline", DELETE, "baseline: missing (expected an object)"),
    ("pairs/Smiling.json", "baseline", {},
     "baseline: expected at least one edit (an object with target_kept)"),
    ("pairs/Smiling.json", "oracle", [], "oracle: expected an object, got []"),
    ("pairs/Smiling.json", "baseline.flip.target_kept", 1.5,
     "baseline.flip.target_kept: expected a proportion in [0, 1], got 1.5"),
    ("pairs/Smiling.json", "oracle.flip.Eyeglasses_flipped", "0.6",
     "oracle.flip.Eyeglasses_flipped: expected a proportion in [0, 1], got '0.6'"),
    ("pairs/Smiling.json", "n_pairs", None, "n_pairs: expected an integer >= 0, got null"),
    ("hallucinate.json", "Smiling.positive_rate", DELETE,
     "Smiling.positive_rate: missing (expected a proportion in [0, 1])"),
    ("hallucinate.json", "Eyeglasses", [0.5], "Eyeglasses: expected an object, got [0.5]"),
    ("hallucinate.json", "cells_Smiling_Eyeglasses", [40, 10, 10, 40],
     "cells_Smiling_Eyeglasses: expected an object, got [40, 10, 10, 40]"),
    ("hallucinate.json", "cells_Smiling_Eyeglasses.t1_g1", "40",
     "cells_Smiling_Eyeglasses.t1_g1: expected an integer >= 0, got '40'"),
    ("hallucinate.json", "n_images", 0, "n_images: expected a positive integer, got 0"),
    ("oracle.json", "enabled", "false", "enabled: expected true or false, got 'false'"),
    ("oracle.json", "heldout_unbiased_accuracy", DELETE,
     "heldout_unbiased_accuracy: missing (expected an object)"),
    ("oracle.json", "real_test_accuracy", [0.7], "real_test_accuracy: expected an object, got [0.7]"),
    ("inversion.json", "steps", "5", "steps: expected a positive integer, got '5'"),
    ("inversion.json", "mse_mean", None, "mse_mean: expected a number, got null"),
    ("leakage.json", "models.erm.amplification", None,
     "models.erm.amplification: expected a number, got null"),
    ("leakage.json", "models.erm.model_leakage.std", DELETE,
     "models.erm.model_leakage.std: missing (expected a number)"),
    ("leakage.json", "models", [{"mAP": 0.99}], 'models: expected an object, got [{"mAP": 0.99}]'),
    ("leakage.json", "attacker.rounds", "2", "attacker.rounds: expected a positive integer, got '2'"),
    ("colored_digits.json", "n_test", True, "n_test: expected a positive integer, got true"),
    ("colored_digits.json", "n_test", DELETE, "n_test: missing (expected a positive integer)"),
    ("debias/1.0/erm.json", "test.accuracy", "abc",
     "test.accuracy: expected a proportion in [0, 1], got 'abc'"),
    ("debias/1.0/erm.json", "test.conflicting_accuracy", DELETE,
     "test.conflicting_accuracy: missing (expected a proportion in [0, 1] or null)"),
    ("debias/faces/erm.json", "test", DELETE, "test: missing (expected an object)"),
    ("bias_ensemble/1.0.json", "n_selected", "95", "n_selected: expected an integer >= 0, got '95'"),
    ("bias_ensemble/1.0.json", "aligned_precision", None,
     "aligned_precision: expected a proportion in [0, 1], got null"),
]


def newer_metrics() -> dict[str, dict]:
    """valid_metrics() with the fields newer stages add: the balanced test split, the renderer
    generator's true labels as a judge, and where the generator and the SVM labels came from."""
    files = valid_metrics()
    files[EVAL].update(balanced=evaluation(0.95, 0.05)["test"], n_balanced=4000)
    files["pairs/Smiling.json"].update(generator="renderer",
                                       true={"flip": {"target_kept": 0.9, "Eyeglasses_flipped": 0.8}})
    for attr in ("Smiling", "Eyeglasses"):
        files["hallucinate.json"][attr]["true_agreement"] = 0.9
    files["latent/Smiling.json"]["labels"] = "ground_truth"
    return files


NEWER_WRONG_SHAPES = [
    (EVAL, "balanced.Eyeglasses.DEO", "abc", f"balanced.Eyeglasses.DEO: expected {NUMBER_OR_CI}, got 'abc'"),
    (EVAL, "balanced", [1], "balanced: expected an object, got [1]"),
    (EVAL, "balanced.Eyeglasses", DELETE,
     "balanced: expected at least one protected attribute (an object with DEO, BA, KL)"),
    (EVAL, "n_balanced", 0, "n_balanced: expected a positive integer, got 0"),
    ("pairs/Smiling.json", "true.flip.target_kept", 2,
     "true.flip.target_kept: expected a proportion in [0, 1], got 2"),
    ("pairs/Smiling.json", "true", {}, None),  # no edits judged by the truth: no row, no error
    ("pairs/Smiling.json", "generator", 1, "generator: expected a string, got 1"),
    ("hallucinate.json", "Smiling.true_agreement", "high",
     "Smiling.true_agreement: expected a proportion in [0, 1], got 'high'"),
    ("latent/Smiling.json", "labels", ["x"], 'labels: expected a string, got ["x"]'),
]


def shape_ids(cases):
    return [f"{n}:{k}={'missing' if v is DELETE else v!r}" for n, k, v, _ in cases]


@pytest.mark.parametrize(("name", "key_path", "value", "message"), WRONG_SHAPES, ids=shape_ids(WRONG_SHAPES))
def test_a_wrong_field_is_named_with_its_key_path(tmp_path, name, key_path, value, message):
    write_all(tmp_path, changed(valid_metrics(), name, key_path, value))
    with pytest.raises(DebiaslabError) as err:
        collect(tmp_path)
    assert str(err.value) == f"{tmp_path / name}: {message}"


@pytest.mark.parametrize(("name", "key_path", "value", "message"), NEWER_WRONG_SHAPES,
                         ids=shape_ids(NEWER_WRONG_SHAPES))
def test_a_wrong_newer_field_is_named_with_its_key_path(tmp_path, name, key_path, value, message):
    write_all(tmp_path, changed(newer_metrics(), name, key_path, value))
    if message is None:
        collect(tmp_path)
        return
    with pytest.raises(DebiaslabError) as err:
        collect(tmp_path)
    assert str(err.value) == f"{tmp_path / name}: {message}"


def test_the_truth_and_provenance_get_rows_and_columns_only_when_present(tmp_path):
    write_all(tmp_path, valid_metrics())
    old = {t.title: t for s in collect(tmp_path) for t in s.tables}
    write_all(tmp_path, newer_metrics())
    new = {t.title: t for s in collect(tmp_path) for t in s.tables}
    assert len(new) == len(old) + 1  # the balanced split's table

    pairs = "Edited pairs G(z) → G(z') (generate_pairs)"
    assert old[pairs].header == ["target", "edit", "judge", "pairs", "target kept", "protected attributes"]
    assert new[pairs].header == ["target", "generator", *old[pairs].header[1:]]
    assert new[pairs].rows[0] == ["Smiling", "renderer", *old[pairs].rows[0][1:]]
    assert [r[3] for r in new[pairs].rows] == ["baseline", "oracle", "truth (renderer)"]
    # 90 of 100: Wilson [0.826, 0.945]; 80 of 100: [0.711, 0.867]
    assert new[pairs].rows[2][4:] == ["100", "0.900 [0.826, 0.945]",
                                      "Eyeglasses flipped 0.800 [0.711, 0.867]"]

    hallucinated = "Hallucinated labels of G(z) (hallucinate)"
    assert new[hallucinated].header == [*old[hallucinated].header, "agreement with truth (renderer)"]
    assert new[hallucinated].rows[0] == [*old[hallucinated].rows[0], "0.900 [0.826, 0.945]"]

    latent = "Latent hyperplanes (fit_hyperplanes)"
    assert "SVM labels" not in old[latent].header
    assert new[latent].header[:3] == ["target", "variant", "SVM labels"]
    assert new[latent].rows[0][:3] == ["Smiling", "standard", "ground truth (renderer)"]


def test_the_valid_files_give_every_table(tmp_path):
    write_all(tmp_path, valid_metrics())
    tables = {t.title: t for s in collect(tmp_path) for t in s.tables}
    assert len(tables) == 12
    assert tables["Leakage of Eyeglasses"].rows[1] == ["erm", "0.990", "0.980", "0.950 ± 0.020", "0.880",
                                                       "+0.070"]


def test_extra_keys_are_ignored_and_remove_no_row(tmp_path):
    write_all(tmp_path, valid_metrics())
    reference = markdown(tmp_path)
    files = valid_metrics()
    extra = {"note": "written by a newer stage", "nested": [1, {"a": None}]}
    for obj in files.values():
        obj.update(extra)
    files[EVAL]["test"].update(F1={"value": 0.9, "lo": 0.8, "hi": 1.0}, calibration={"ece": 0.02}, seed=3)
    files[EVAL]["test"]["Eyeglasses"].update(extra, EO_ratio=ci(0.5))
    files["pairs/Smiling.json"]["baseline"]["flip"].update(seconds=1.5, note="x")  # was an IndexError
    files["hallucinate.json"].update(timing={"positive_rate": 0.1})  # not an attribute name: no row
    files["hallucinate.json"]["Smiling"].update(extra)
    files["leakage.json"]["models"]["erm"].update(extra)
    files["debias/1.0/erm.json"]["test"].update(extra)
    files["bias_ensemble/1.0.json"].update(selected_fraction=0.95)
    write_all(tmp_path, files)
    assert markdown(tmp_path) == reference


def test_optional_and_null_fields_are_shown_as_missing_and_keep_the_row(tmp_path):
    files = valid_metrics()
    files[EVAL]["test"]["AP"] = 0.99  # a plain number: shown alone
    del files[EVAL]["test"]["Eyeglasses"]["EO_gap"]
    files[EVAL]["test"]["Eyeglasses"]["DP_gap"] = None
    files[EVAL]["test"]["Eyeglasses"].pop("KL_original")  # a file from before it was reported
    files["latent/Smiling.json"].pop("mean_edit_distance")
    files["pairs/Smiling.json"]["oracle"] = None  # real CelebA: no oracle
    files["hallucinate.json"]["Smiling"].pop("oracle_agreement")
    files["oracle.json"].pop("real_test_accuracy")
    files["inversion.json"].pop("mse_median")
    files["leakage.json"]["attacker"] = None
    files["debias/1.0/erm.json"]["test"]["aligned_accuracy"] = None  # no bias-aligned test images
    files["debias/faces/erm.json"]["test"]["conflicting_accuracy"] = None
    files["bias_ensemble/1.0.json"] = {"aligned_precision": float("nan"), "conflicting_recall": 1.0}
    write_all(tmp_path, files)
    tables = {t.title: t for s in collect(tmp_path) for t in s.tables}
    assert tables["Fairness on test, per method"].rows == [
        ["baseline", "Smiling", "Eyeglasses", "0.990", "0.800 [0.780, 0.820]", "0.480 [0.380, 0.580]",
         "0.030 [0.020, 0.040]", "2.000 [1.500, 2.500]", "-", "-", "-"]]
    assert tables["Latent hyperplanes (fit_hyperplanes)"].rows[0][-1] == "-"
    assert [r[2] for r in tables["Edited pairs G(z) → G(z') (generate_pairs)"].rows] == ["baseline"]
    assert tables["Hallucinated labels of G(z) (hallucinate)"].rows[0][3] == "-"
    assert tables["Oracle judge (oracle)"].rows == [["Smiling", "0.740", "-"]]
    assert tables["Inversion of real images (invert_latents)"].rows[0][3] == "-"
    assert "over the attacker rounds" in tables["Leakage of Eyeglasses"].note
    aligned = tables["Colored Digits: bias-aligned / bias-conflicting test accuracy"]
    assert aligned.rows == [["1.0 %", "- / 0.450"]]
    assert tables["Bias set 'faces': test accuracy"].rows == [["erm", "0.500", "0.900", "-"]]
    selection = tables["BiasEnsemble selection of bias-aligned training images (bias_ensemble)"]
    assert selection.rows == [["1.0 %", "-", "-", "1.0000", "-"]]


def test_an_interrupted_atomic_write_is_not_a_row(tmp_path):
    write_all(tmp_path, valid_metrics())
    reference = markdown(tmp_path)
    (tmp_path / "evaluate/baseline/.Smiling.json.tmp-k3x9.json").write_text('{"test": {"AP"')
    (tmp_path / "debias/1.0/.erm.json.tmp-k3x9.json").write_text("")
    assert markdown(tmp_path) == reference


# ----------------------------------------------------------------------------- paired seeds
# per seed 0..4: the baseline's DEO and Δ = augmented − baseline; AP only for seed 0
REFERENCE_DEO = [0.40, 0.42, 0.38, 0.41, 0.39]
DELTA_DEO = [-0.10, -0.12, -0.08, -0.11, -0.09]
PAIRED_TITLE = "Paired seeds (method − baseline, same seed)"


def paired_deltas() -> list[Delta]:
    deo = [Delta("renderer-gt", seed, f"renderer-gt-seed{seed}", "a" * 40, "augmented", "baseline", "DEO",
                 ref + d, ref, d) for seed, ref, d in zip(range(5), REFERENCE_DEO, DELTA_DEO, strict=True)]
    return [*deo, Delta("renderer-gt", 0, "renderer-gt-seed0", "a" * 40, "augmented", "baseline", "AP",
                        0.97, 0.98, 0.97 - 0.98)]


def write_paired(reports, name="renderer-gt", text=None):
    path = reports / "paired" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(deltas_csv(paired_deltas(), split="balanced") if text is None else text)
    return path


def test_a_paired_csv_is_a_table_of_mean_deltas_with_t_intervals(tmp_path):
    write_paired(tmp_path / "reports")
    (tmp_path / "reports/paired/renderer-gt.md").write_text("# not read\n")
    [table] = paired_tables(tmp_path / "reports")
    assert table.title == "renderer-gt (split balanced)"
    assert table.header == ["variant", "method", "reference", "metric", "n seeds", "reference mean ± sd",
                            "method mean ± sd", "mean Δ [95% t-interval]", "excludes 0"]
    # Δ: mean -0.10, sd 0.0158114 (squares 0, 4, 4, 1, 1 e-4 over 4); half = t_{0.975,4} 2.7764451
    # × 0.0158114 / √5 = 0.0196324. The method is 0.30 at every seed: sd 0.
    assert table.rows == [
        ["renderer-gt", "augmented", "baseline", "DEO", "5", "0.4000 ± 0.0158", "0.3000 ± 0.0000",
         "-0.1000 [-0.1196, -0.0804]", "yes"],
        ["renderer-gt", "augmented", "baseline", "AP", "1", "0.9800 ± n/a", "0.9700 ± n/a",
         "-0.0100 [n/a (1 seed)]", "n/a"]]
    assert "reports/paired/renderer-gt.csv" in table.note
    # the same cells as `paired table` writes, per-seed column aside
    md = paired.markdown_table(summarize(paired_deltas()), with_variant=True).splitlines()
    assert [line.split(" | ")[:-1] for line in md[2:]] == [["| " + r[0], *r[1:]] for r in table.rows]


def test_the_paired_section_renders_only_with_paired_csvs(tmp_path):
    write(tmp_path / "metrics/evaluate/baseline/Smiling.json", evaluation(0.99, 0.48))
    reports = tmp_path / "reports"
    assert PAIRED_TITLE not in render_markdown(collect(tmp_path / "metrics", reports))  # no folder
    (reports / "paired").mkdir(parents=True)
    (reports / "paired/renderer-gt.md").write_text("# a table without its CSV\n")
    write_paired(reports, ".renderer-h.csv.tmp-123")  # an atomic write in progress
    assert PAIRED_TITLE not in render_markdown(collect(tmp_path / "metrics", reports))
    write_paired(reports, "renderer-gt+renderer-h")
    sections = collect(tmp_path / "metrics", reports)
    assert [s.key for s in sections] == ["fairness", "paired"]
    md = render_markdown(sections)
    assert f"## {PAIRED_TITLE}" in md and "### renderer-gt+renderer-h (split balanced)" in md
    assert ("| renderer-gt | augmented | baseline | DEO | 5 | 0.4000 ± 0.0158 | 0.3000 ± 0.0000 | "
            "-0.1000 [-0.1196, -0.0804] | yes |") in md
    assert "-0.1000 [-0.1196, -0.0804]" in render_html(sections)


CSV_HEADER = ",".join(paired.CSV_COLUMNS)
ROW = "renderer-gt,0,renderer-gt-seed0,rev,augmented,baseline,balanced,DEO,0.3,0.4,-0.1"
MALFORMED_CSVS = [  # the file's text, the message after "FILE: "
    ("", "expected the header " + CSV_HEADER + ", got ''"),
    ("variant,seed,delta\n", f"expected the header {CSV_HEADER}, got 'variant,seed,delta'"),
    (CSV_HEADER + "\n", "no rows (expected one per variant, seed, pair and metric)"),
    (f"{CSV_HEADER}\n{ROW}\n{ROW.replace(',0.4,', ',0.4,x,')}\n", "line 3: expected 11 fields, got 12"),
    (f"{CSV_HEADER}\n{ROW.replace(',0,', ',zero,')}\n",
     "line 2: seed: expected a non-negative integer, got 'zero'"),
    (f"{CSV_HEADER}\n{ROW.replace(',0.3,', ',abc,')}\n",
     "line 2: method_value: expected a finite number, got 'abc'"),
    (f"{CSV_HEADER}\n{ROW.replace(',0.4,', ',nan,')}\n",
     "line 2: reference_value: expected a finite number, got 'nan'"),
    (f"{CSV_HEADER}\n{ROW.replace('-0.1', '-0.2')}\n",
     "line 2: delta: -0.2 is not method_value − reference_value (-0.1)"),
    (f"{CSV_HEADER}\n{ROW.replace(',DEO,', ',,')}\n", "line 2: metric: expected a name, got ''"),
    (f"{CSV_HEADER}\n{ROW}\n{ROW}\n",
     "line 3: a second row for variant renderer-gt, seed 0, augmented − baseline, DEO"),
    (f"{CSV_HEADER}\n{ROW}\n{ROW.replace('balanced', 'test').replace(',0,', ',1,')}\n",
     "split: expected one split in a file, got 'balanced', 'test'"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED_CSVS, ids=[m for _, m in MALFORMED_CSVS])
def test_a_malformed_paired_csv_is_one_line_naming_the_file(tmp_path, text, message):
    path = write_paired(tmp_path, text=text)
    with pytest.raises(DebiaslabError) as err:
        paired_tables(tmp_path)
    assert str(err.value) == f"{path}: {message}"


def test_a_paired_csv_that_is_not_text_is_named(tmp_path):
    path = write_paired(tmp_path, text="")
    path.write_bytes(b"\xff\xfe variant")
    with pytest.raises(DebiaslabError, match=r"^.*/paired/renderer-gt\.csv: not a CSV \(not UTF-8 text\)$"):
        paired_tables(tmp_path)


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
def run_report(workdir, params="{}\n"):
    (workdir / "params.yaml").write_text(params)  # every stage runs beside one; {}: the defaults
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


def test_stage_reports_a_wrongly_typed_field_in_one_line(tmp_path):
    report = evaluation(0.99, 0.48)
    report["test"]["Eyeglasses"]["DEO"] = "abc"
    write(tmp_path / "metrics/evaluate/baseline/Smiling.json", report)
    proc = run_report(tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: report: metrics/evaluate/baseline/Smiling.json: "
        "test.Eyeglasses.DEO: expected a number or {value, lo, hi}, got 'abc'"]
    assert not (tmp_path / "reports/summary.md").exists()


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


def test_plots_follow_the_tables_order_baseline_first(tmp_path):
    for rel in ("evaluate/augmented_inversion/Smiling_scores.png", "evaluate/augmented/Smiling_scores.png",
                "evaluate/baseline/Smiling_scores.png", "evaluate/drfairness/Smiling_scores.png",
                "fair/fairbatch_Smiling.png", "fair/drfairness_Smiling.png", "compare/Smiling_ap_vs_deo.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"png")
    order = [p.rel for p in collect_plots(tmp_path)["fairness"]]
    assert order == ["compare/Smiling_ap_vs_deo.png", "evaluate/baseline/Smiling_scores.png",
                     "evaluate/augmented/Smiling_scores.png",
                     "evaluate/augmented_inversion/Smiling_scores.png",
                     "evaluate/drfairness/Smiling_scores.png", "fair/fairbatch_Smiling.png",
                     "fair/drfairness_Smiling.png"]


# ----------------------------------------------------------------------------- the GAN paper's tables
def test_the_category_table_averages_each_category_s_targets(tmp_path):
    """Ramaswamy et al.'s table: baseline and augmented, AP/DEO/BA/KL averaged per category."""
    deos = {"Bangs": (0.40, 0.30), "Young": (0.20, 0.10), "Big_Nose": (0.50, 0.45)}
    for target, (base, aug) in deos.items():
        write(tmp_path / f"metrics/evaluate/baseline/{target}.json", evaluation(0.9, base))
        write(tmp_path / f"metrics/evaluate/augmented/{target}.json", evaluation(0.8, aug))
    categories = {"gender-independent": ["Bangs", "Young"], "inconsistent": ["Big_Nose", "Oval_Face"]}
    tables = {t.title: t for s in collect(tmp_path / "metrics", categories=categories,
                                          protected="Eyeglasses") for t in s.tables}
    table = tables["Per category of targets (protected Eyeglasses), as the GAN paper's table"]
    assert table.header[:6] == ["category", "targets", "AP baseline", "AP augmented", "DEO baseline",
                                "DEO augmented"]
    assert table.rows[0][:6] == ["gender-independent", "2 of 2", "0.900 ± 0.000", "0.800 ± 0.000",
                                 "0.300 ± 0.100", "0.200 ± 0.100"]
    assert table.rows[1][1:6] == ["1 of 2", "0.900 ± 0.000", "0.800 ± 0.000", "0.500 ± 0.000",
                                  "0.450 ± 0.000"]  # Oval_Face has no evaluation: left out, and said
    titles = {t.title for s in collect(tmp_path / "metrics") for t in s.tables}
    assert not any("category" in t for t in titles)  # no categories, no table


def test_the_report_stage_reads_the_categories_from_params(tmp_path):
    write(tmp_path / "metrics/evaluate/baseline/Bangs.json", evaluation(0.9, 0.4))
    write(tmp_path / "metrics/evaluate/augmented/Bangs.json", evaluation(0.8, 0.3))
    proc = run_report(tmp_path, "report:\n  categories: {independent: [Bangs]}\n")
    assert proc.returncode == 0, proc.stderr
    assert "| independent | 1 of 1 | 0.900 ± 0.000 |" in (tmp_path / "reports/summary.md").read_text()
    proc = run_report(tmp_path, "report:\n  categories: {a: [Bangs], b: [Bangs]}\n")
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "error: report: params.yaml: report.categories: Bangs is in both 'a' and 'b'")


def test_the_full_skew_ablation_is_a_table_of_both_aps(tmp_path):
    write(tmp_path / "full_skew/Smiling.json", {
        "target": "Smiling", "protected": "Eyeglasses", "opposite": False, "train_images": 14400,
        "best_epoch": 3, "test_AP": {"Smiling": 0.61, "Eyeglasses": 0.97}})
    tables = {t.title: t for s in collect(tmp_path) for t in s.tables}
    table = tables["Fully skewed training (ablation: full_skew_tests.py)"]
    assert table.rows == [["Smiling", "Eyeglasses (equals Smiling)", "14,400", "0.610", "0.970"]]
