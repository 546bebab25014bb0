"""Metrics against hand-computed cases and, where one exists, sklearn or fairlearn."""

import fairlearn.metrics as flm
import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from debiaslab import metrics as M


@pytest.fixture
def noisy():
    rng = np.random.default_rng(0)
    n = 800
    y = rng.integers(0, 2, n)
    g = rng.integers(0, 2, n)
    score = np.round(rng.random(n) + 0.4 * y + 0.2 * g, 2)  # rounded: many ties
    return y, score, g, (score > 0.7).astype(int)


def test_average_precision_matches_sklearn_with_ties_and_weights(noisy):
    y, s, _, _ = noisy
    w = np.random.default_rng(1).integers(0, 4, len(y))
    assert M.average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert M.average_precision(y, s, sample_weight=w) == pytest.approx(
        average_precision_score(y, s, sample_weight=w), abs=1e-12)


def test_weighted_ap_by_hand():
    y = np.array([1, 1, 1, 0, 0, 0])
    g = np.array([0, 0, 1, 0, 1, 1])
    s = np.array([0.9, 0.3, 0.8, 0.7, 0.2, 0.1])
    # N_y / (2 N_{y,g}): y=1: g0 3/4, g1 3/2; y=0: g0 3/2, g1 3/4
    w = np.array([0.75, 0.75, 1.5, 1.5, 0.75, 0.75])
    assert M.weighted_average_precision(y, s, sensitive_features=g) == pytest.approx(
        average_precision_score(y, s, sample_weight=w))


def test_deo_by_hand():
    y = np.array([1, 1, 1, 1, 0, 0])
    g = np.array([0, 0, 1, 1, 0, 1])
    pred = np.array([1, 0, 1, 1, 0, 0])
    assert M.difference_in_equal_opportunity(y, pred, sensitive_features=g) == pytest.approx(0.5)


def test_bias_amplification_by_hand():
    # A=1: T=1 in 3 of 4, predicted 4 of 4; A=0: T=1 in 1 of 4, predicted 0 of 4.
    g = np.array([1] * 4 + [0] * 4)
    y = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    pred = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    assert M.bias_amplification(y, pred, sensitive_features=g) == pytest.approx(0.25)
    assert M.bias_amplification(y, y, sensitive_features=g) == pytest.approx(0.0)
    # A model that reverses the correlation has negative amplification.
    assert M.bias_amplification(y, 1 - g, sensitive_features=g) < 0


def test_group_rates_and_gaps_match_fairlearn(noisy):
    y, _, g, pred = noisy
    assert M.equalized_odds_difference(y, pred, sensitive_features=g) == pytest.approx(
        flm.equalized_odds_difference(y, pred, sensitive_features=g))
    assert M.demographic_parity_difference(y, pred, sensitive_features=g) == pytest.approx(
        flm.demographic_parity_difference(y, pred, sensitive_features=g))
    frame = flm.MetricFrame(metrics={"tpr": flm.true_positive_rate, "fpr": flm.false_positive_rate},
                            y_true=y, y_pred=pred, sensitive_features=g)
    rates = M.group_rates(y, pred, sensitive_features=g)
    for k in (0, 1):
        assert rates[str(k)]["TPR"] == pytest.approx(frame.by_group.loc[k, "tpr"])
        assert rates[str(k)]["FPR"] == pytest.approx(frame.by_group.loc[k, "fpr"])


def test_cell_accuracy_by_hand():
    y = np.array([0, 0, 1, 1, 1])
    g = np.array([0, 1, 0, 1, 1])
    pred = np.array([0, 1, 1, 1, 0])
    cells = M.cell_accuracy(y, pred, sensitive_features=g)
    assert cells == {"y=0,g=0": 1.0, "y=0,g=1": 0.0, "y=1,g=0": 1.0, "y=1,g=1": 0.5}


def test_calibrated_threshold_predicts_as_many_positives_as_true():
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.3, 0.1])
    assert M.calibrated_threshold(y, s) == pytest.approx(0.55)
    rng = np.random.default_rng(2)
    y, s = rng.integers(0, 2, 500), rng.random(500)
    assert (s > M.calibrated_threshold(y, s)).sum() == y.sum()


def test_f1_threshold_is_f1_optimal():
    y = np.array([0, 0, 1, 1, 1, 0])
    s = np.array([0.1, 0.2, 0.6, 0.7, 0.8, 0.65])
    t = M.f1_threshold(y, s)
    assert t == pytest.approx(0.6)  # all three positives, one false positive: F1 = 6/7


def test_kl_is_zero_for_identical_groups_and_positive_when_shifted():
    rng = np.random.default_rng(3)
    s = rng.random(2000)
    y = rng.integers(0, 2, 2000)
    same = np.r_[s[:1000], s[:1000]]
    yy = np.r_[y[:1000], y[:1000]]
    gg = np.r_[np.zeros(1000, int), np.ones(1000, int)]
    assert M.kl_divergence(yy, same, sensitive_features=gg) == pytest.approx(0.0, abs=1e-9)
    shifted = np.r_[s[:1000] * 0.5, s[:1000] * 0.5 + 0.5]
    value, parts = M.kl_divergence(yy, shifted, sensitive_features=gg, components=True)
    assert value > 1.0 and len(parts) == 4
    # Swapping the groups leaves the mean of both directions unchanged.
    assert M.kl_divergence(yy, shifted, sensitive_features=1 - gg) == pytest.approx(value)


def test_kl_uses_one_bin_range_for_both_groups():
    """Positives of the two groups occupy disjoint score ranges: with one shared bin range their
    histograms do not overlap (large KL); per-group ranges, the original bug, would make them
    look identical. Negatives are identical in both groups (KL 0)."""
    pos = np.r_[np.linspace(0.0, 0.2, 100), np.linspace(0.8, 1.0, 100)]
    neg = np.r_[np.linspace(0.3, 0.6, 100), np.linspace(0.3, 0.6, 100)]
    s = np.r_[pos, neg]
    y = np.r_[np.ones(200, int), np.zeros(200, int)]
    g = np.tile(np.r_[np.zeros(100, int), np.ones(100, int)], 2)
    value, parts = M.kl_divergence(y, s, sensitive_features=g, components=True)
    assert parts["y=0,KL(0||1)"] == pytest.approx(0.0, abs=1e-9)
    assert parts["y=1,KL(0||1)"] > 5 and value > 2


def test_median_2sigma_pools_every_value():
    # the median of 1..8 is 4.5; the population std of 1..8 is sqrt(63/12) = 2.291288
    out = M.summarize_median_2sigma(np.arange(1.0, 9.0).reshape(4, 2))
    assert out == {"median": 4.5, "two_sigma": pytest.approx(4.582576, abs=1e-6)}
    assert M.summarize_median_2sigma([np.nan, np.inf]) == {"median": None, "two_sigma": None}


def test_kl_original_is_the_median_of_four_times_b_resampled_divergences():
    """Ramaswamy et al.'s KL: all four divergences of every resample pooled, not their mean."""
    from debiaslab.evaluate import split_report

    rng = np.random.default_rng(0)
    y, g = rng.integers(0, 2, 400), rng.integers(0, 2, 400)
    s = np.clip(0.3 * y + 0.2 * g + rng.random(400) * 0.5, 0, 1)
    report = split_report(y, s, {"Male": g}, {"calibrated": 0.5}, n_boot=20, seed=1, kl_bins=10)
    w = M.bootstrap_weights(400, n_boot=20, seed=1)
    _, parts = M.kl_divergence(y, s, sensitive_features=g, bins=10, sample_weight=w, components=True)
    pooled = np.concatenate(list(parts.values()))
    assert pooled.shape == (80,)
    assert report["Male"]["KL_original"]["median"] == pytest.approx(np.median(pooled), abs=1e-6)
    assert report["Male"]["KL_original"]["two_sigma"] == pytest.approx(2 * np.std(pooled), abs=1e-6)
    assert report["Male"]["KL"]["value"] == pytest.approx(
        M.kl_divergence(y, s, sensitive_features=g, bins=10), abs=1e-6)


def test_kl_needs_both_classes():
    with pytest.raises(ValueError, match="no samples with y_true == 0"):
        M.kl_divergence(np.ones(4, int), np.arange(4.0), sensitive_features=np.array([0, 1, 0, 1]))


def test_two_dimensional_weights_equal_a_loop_over_rows(noisy):
    y, s, g, pred = noisy
    w = M.bootstrap_weights(len(y), n_boot=7, seed=4)
    assert w.shape == (7, len(y)) and (w.sum(1) == len(y)).all()
    checks = [
        (M.average_precision, (y, s), {}),
        (M.weighted_average_precision, (y, s), {"sensitive_features": g}),
        (M.difference_in_equal_opportunity, (y, pred), {"sensitive_features": g}),
        (M.bias_amplification, (y, pred), {"sensitive_features": g}),
        (M.kl_divergence, (y, s), {"sensitive_features": g}),
        (M.accuracy, (y, pred), {}),
    ]
    for fn, args, kw in checks:
        batched = fn(*args, **kw, sample_weight=w)
        looped = [fn(*args, **kw, sample_weight=row) for row in w]
        np.testing.assert_allclose(batched, looped, rtol=1e-10, err_msg=fn.__name__)


def test_bootstrap_is_seeded_and_summary_brackets_the_median():
    a = M.bootstrap_weights(50, n_boot=20, seed=1)
    np.testing.assert_array_equal(a, M.bootstrap_weights(50, n_boot=20, seed=1))
    assert not np.array_equal(a, M.bootstrap_weights(50, n_boot=20, seed=2))
    summary = M.summarize(0.5, np.linspace(0, 1, 101))
    assert summary["lo"] < summary["median"] < summary["hi"] and summary["median"] == 0.5
