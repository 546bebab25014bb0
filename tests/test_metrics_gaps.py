"""Gaps of group rates to the overall rate (Dr-Fairness's DP, EO and equalised-odds gaps), by hand."""

import numpy as np
import pytest

from debiaslab.metrics import (
    demographic_parity_difference,
    demographic_parity_gap,
    equal_opportunity_gap,
    equalised_odds_gap,
)

# 10 samples: group 0 is the first 4, group 1 the last 6
G = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
Y = np.array([1, 1, 0, 0, 1, 1, 1, 0, 0, 0])
P = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 1])


def test_demographic_parity_gap_by_hand():
    # P(ŷ=1) = 5/10; group 0: 3/4, group 1: 2/6 -> gaps 0.25 and 1/6
    assert demographic_parity_gap(P, G) == pytest.approx(0.25)
    # with two groups it is the group difference times the other group's share: (3/4 - 1/3) * 6/10
    diff = demographic_parity_difference(Y, P, sensitive_features=G)
    assert demographic_parity_gap(P, G) == pytest.approx(diff * 0.6)


def test_equal_opportunity_gap_by_hand():
    # y=1: 5 samples, ŷ=1 on 3 -> 3/5; group 0: 2/2, group 1: 1/3 -> gaps 0.4 and 4/15
    assert equal_opportunity_gap(Y, P, G) == pytest.approx(0.4)
    # y=0: 5 samples, ŷ=1 on 2 -> 2/5; group 0: 1/2, group 1: 1/3 -> gaps 0.1 and 1/15
    assert equal_opportunity_gap(Y, P, G, label=0) == pytest.approx(0.1)


def test_equalised_odds_gap_is_the_larger_of_the_two_labels():
    assert equalised_odds_gap(Y, P, G) == pytest.approx(0.4)
    assert equalised_odds_gap(Y, 1 - P, G) == pytest.approx(0.4)  # 1 − ŷ mirrors every rate
    p = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0, 0])  # y=1 gap 0; y=0: 2/5 overall, 1 vs 0 -> 0.6
    assert equalised_odds_gap(Y, p, G) == pytest.approx(0.6)


def test_gaps_are_zero_when_rates_are_equal_and_groups_may_be_any_labels():
    g = np.array(["a", "a", "b", "b", "c", "c"])
    p = np.array([1, 0, 1, 0, 0, 1])
    assert demographic_parity_gap(p, g) == 0.0
    # three groups: rates 1, 1/2, 0 against 1/2 overall -> 0.5
    assert demographic_parity_gap(np.array([1, 1, 1, 0, 0, 0]), g) == pytest.approx(0.5)


def test_missing_label_gives_nan_and_bad_input_raises():
    y = np.ones(4, int)
    assert np.isnan(equal_opportunity_gap(y, [1, 0, 1, 0], [0, 0, 1, 1], label=0))
    assert np.isnan(equalised_odds_gap(y, [1, 0, 1, 0], [0, 0, 1, 1]))
    with pytest.raises(ValueError, match="binary"):
        demographic_parity_gap([2, 0], [0, 1])
    with pytest.raises(ValueError, match="same length"):
        demographic_parity_gap([1, 0, 1], [0, 1])


def test_gaps_accept_bootstrap_weight_matrices():
    w = np.vstack([np.ones(len(Y)), np.arange(len(Y)) % 3])
    for fn, args in ((demographic_parity_gap, (P, G)), (equalised_odds_gap, (Y, P, G)),
                     (equal_opportunity_gap, (Y, P, G))):
        both = fn(*args, sample_weight=w)
        assert both.shape == (2,)
        assert both[0] == pytest.approx(fn(*args))
        keep = np.repeat(np.arange(len(Y)), w[1].astype(int))  # integer weights = repeated rows
        assert both[1] == pytest.approx(fn(*(a[keep] for a in args)))
