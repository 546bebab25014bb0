"""Glue of the bias-conflicting benchmarks: accuracy by alignment, selection scores, bias sets."""

import numpy as np
import pytest

from debiaslab.bias_ensemble import bias_ensemble_report
from debiaslab.bias_experiment import (
    accuracy_by_alignment,
    group_balanced_accuracy,
    load_bias_splits,
    write_bias_set,
)
from debiaslab.params import BiasEnsembleParams


def test_write_then_load_a_bias_set(tmp_path):
    rng = np.random.default_rng(0)
    splits = {s: (rng.integers(0, 255, (6, 4, 4, 3), dtype=np.uint8), np.array([0, 1, 1, 0, 1, 0]),
                  np.array([0, 1, 0, 0, 1, 1])) for s in ("train", "valid", "test")}
    write_bias_set(tmp_path / "set", splits)
    loaded = load_bias_splits(tmp_path / "set")
    np.testing.assert_array_equal(loaded["test"].data.images, splits["test"][0])
    np.testing.assert_array_equal(loaded["train"].aligned, [True, True, False, True, True, False])


def test_accuracy_by_alignment_by_hand(tmp_path):
    write_bias_set(tmp_path / "s", {s: (np.zeros((4, 2, 2, 3), np.uint8), np.array([0, 1, 1, 0]),
                                        np.array([0, 1, 0, 1])) for s in ("train", "valid", "test")})
    split = load_bias_splits(tmp_path / "s")["test"]
    out = accuracy_by_alignment(np.array([0, 0, 1, 0]), split)  # right, wrong, right, right
    assert out == {"accuracy": 0.75, "aligned_accuracy": 0.5, "conflicting_accuracy": 1.0}


def test_group_balanced_accuracy_weighs_both_groups_equally():
    aligned = np.array([True] * 8 + [False] * 2)
    y = np.zeros(10, int)
    scores = np.tile([0.9, 0.1], (10, 1))
    scores[8:] = [0.1, 0.9]  # the two conflicting samples are wrong
    assert group_balanced_accuracy(aligned)(y, scores) == pytest.approx(0.5)  # plain accuracy: 0.8


def test_bias_ensemble_report_by_hand():
    probs = np.array([[0.999, 0.999, 0.5], [0.999, 0.2, 0.995], [0.999, 0.999, 0.1]])
    selected, report = bias_ensemble_report(probs, np.array([True, False, True]),
                                            BiasEnsembleParams(n_models=3, min_votes=2))
    np.testing.assert_array_equal(selected, [True, True, False])
    assert report["aligned_precision"] == 0.5 and report["conflicting_recall"] == 0.0
