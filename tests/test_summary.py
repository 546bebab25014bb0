import json
import re

import pytest

from debiaslab.summary import main


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def ci(v):
    return {"value": v, "median": v, "lo": v - 0.1, "hi": v + 0.1}


def row(out: str, first: str) -> list[str]:
    """The cells of the printed table row that starts with ``first`` (columns: 2+ spaces apart)."""
    line = next(line for line in out.splitlines() if line.startswith(first + "  "))
    return re.split(r"\s{2,}", line.strip())


def test_summary_tables(tmp_path, capsys):
    write(tmp_path / "evaluate/baseline/Smiling.json",
          {"test": {"AP": ci(0.9), "accuracy": ci(0.8),
                    "Eyeglasses": {"DEO": ci(0.4), "BA": ci(0.03), "KL": ci(3.5),
                                   "KL_original": {"median": 3.2, "two_sigma": 0.6}}}})
    write(tmp_path / "debias/1.0/lff_be.json",
          {"test": {"accuracy": 0.5, "aligned_accuracy": 0.9, "conflicting_accuracy": 0.45}})
    write(tmp_path / "bias_ensemble/1.0.json", {"aligned_precision": 0.99, "conflicting_recall": 0.8})
    main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "Fairness on test" in out and "Bias-conflicting benchmarks" in out
    assert row(out, "baseline") == ["baseline", "Smiling", "Eyeglasses", "0.900 [0.800, 1.000]",
                                    "0.800 [0.700, 0.900]", "0.400 [0.300, 0.500]",
                                    "0.030 [-0.070, 0.130]", "3.500 [3.400, 3.600]", "3.200 ± 0.600",
                                    "-", "-"]
    assert "severity  lff_be" in out
    assert row(out, "1.0 %")[:2] == ["1.0 %", "0.500"]  # no colored_digits.json: no test size, no interval
    assert "0.900 / 0.450" in out
    # the selection JSON has no n_selected / n_train: precision and recall without an interval
    assert row(out, "1.0 %  -") == ["1.0 %", "-", "0.9900", "0.8000", "-"]
    assert "Leakage" not in out  # no leakage.json: no section


def test_gan_section_lists_both_judges(tmp_path, capsys):
    write(tmp_path / "latent/Smiling.json", {"variant": "standard", "n_fit": 100, "cos_wt_wg": 0.31,
                                             "svm_heldout_accuracy": {"Smiling": 0.8, "Eyeglasses": 0.97}})
    edit = {"target_kept": 0.93, "Eyeglasses_flipped": 0.85}
    write(tmp_path / "pairs/Smiling.json",
          {"n_pairs": 10, "baseline": {"flip": edit}, "oracle": {"flip": edit}})
    main([str(tmp_path)])
    out = capsys.readouterr().out
    assert row(out, "Smiling  standard") == ["Smiling", "standard", "100", "Smiling 0.800, Eyeglasses 0.970",
                                             "+0.310", "-"]
    assert row(out, "Smiling  flip  baseline") == [
        "Smiling", "flip", "baseline", "10", "0.930 [0.631, 0.990]",
        "Eyeglasses flipped 0.850 [0.541, 0.965]"]
    assert row(out, "Smiling  flip  oracle")[2] == "oracle"


def test_summary_without_metrics(tmp_path, capsys):
    main([str(tmp_path)])
    assert "run `dvc repro`" in capsys.readouterr().out


def test_summary_reports_a_broken_file_in_one_line(tmp_path, capsys):
    (tmp_path / "oracle.json").write_text("{")
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path)])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: summary: {tmp_path / 'oracle.json'}: not valid JSON")


def test_summary_names_a_wrongly_typed_field_in_one_line(tmp_path, capsys):
    edit = {"target_kept": 1.5, "Eyeglasses_flipped": 0.85}
    write(tmp_path / "pairs/Smiling.json", {"n_pairs": 10, "baseline": {"flip": edit}})
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path)])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: summary: {tmp_path / 'pairs/Smiling.json'}: baseline.flip.target_kept: expected a "
        "proportion in [0, 1], got 1.5"]


def test_summary_keeps_rows_with_extra_keys(tmp_path, capsys):
    edit = {"target_kept": 0.93, "Eyeglasses_flipped": 0.85, "seconds": 1.2}  # a key without "_kept"
    write(tmp_path / "pairs/Smiling.json", {"n_pairs": 10, "baseline": {"flip": edit}, "version": 2})
    write(tmp_path / "hallucinate.json", {"n_images": 10, "Smiling": {"positive_rate": 0.5, "note": "x"},
                                          "timing": {"positive_rate": 0.1}})
    main([str(tmp_path)])
    out = capsys.readouterr().out
    assert row(out, "Smiling  flip  baseline")[-1] == "Eyeglasses flipped 0.850 [0.541, 0.965]"
    assert re.search(r"^Smiling +- +0\.500 \[0\.237, 0\.763\] +-$", out, re.M)  # hallucinate
    assert "timing" not in out  # not an attribute name: not a row
