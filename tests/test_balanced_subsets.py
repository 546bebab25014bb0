"""α-balanced subsets (Wang et al.'s --balanced --ratio) and the image-space adversary's U-Net mask."""

import numpy as np
import pytest
import torch

from debiaslab.balanced_subsets import alpha_balanced, group_ratios
from debiaslab.errors import DebiaslabError
from debiaslab.methods.image_adversarial import MASK_BIAS, MaskUNet
from debiaslab.params import TrainParams
from debiaslab.train import make_method


def skewed(n: int, seed: int):
    """Five labels, the first two strongly tied to g, as COCO's objects to gender."""
    rng = np.random.default_rng(seed)
    g = (rng.random(n) < 0.7).astype(int)
    rates = np.array([[0.1, 0.6, 0.3, 0.3, 0.05], [0.6, 0.1, 0.3, 0.35, 0.05]])
    return (rng.random((n, 5)) < rates[g]).astype(int), g


@pytest.mark.parametrize("alpha", [1.0, 1.5, 2.0, 3.0])
def test_every_label_and_the_groups_sizes_end_within_alpha(alpha):
    y, g = skewed(3000, 0)
    assert np.nanmax(group_ratios(y, g)) > 5  # the original set is far from balanced
    rows = alpha_balanced(y, g, alpha=alpha, seed=0)
    assert np.all(np.diff(rows) > 0) and len(rows) > 300  # sorted, unique, most labels kept
    assert np.nanmax(group_ratios(y[rows], g[rows])) <= alpha + 1e-9
    assert (y[rows].sum(0) > 0).all()
    looser = alpha_balanced(y, g, alpha=alpha + 1, seed=0)
    assert len(looser) >= len(rows)


def test_alpha_one_is_exact_in_every_label_combination_where_label_by_label_removal_collapses():
    """Ten labels of rate 0.5 and one tied to g 9 to 1, as SynthFaces' Smiling to Eyeglasses: removing
    images label by label ping-pongs to almost nothing at α = 1; matching label vectors does not."""
    rng = np.random.default_rng(2)
    g = rng.integers(0, 2, 4000)
    y = (rng.random((4000, 8)) < 0.5).astype(int)
    y[:, 0] = np.where(rng.random(4000) < 0.9, g, 1 - g)
    rows = alpha_balanced(y, g, alpha=1.0, seed=0)
    assert len(rows) > 400
    kept_y, kept_g = y[rows], g[rows]
    assert group_ratios(kept_y, kept_g).tolist() == [1.0] * 9  # every label, and the sizes
    vectors = [tuple(v) for v in kept_y]
    for vector in set(vectors):  # every combination of labels too
        members = kept_g[[v == vector for v in vectors]]
        assert (members == 0).sum() == (members == 1).sum()


def test_a_hand_made_set_drops_the_images_that_cost_least():
    # label 0: four images of group 1, one of group 0 -> at alpha 2 two group-1 images must go;
    # rows 1 and 2 also carry label 1, where group 1 is the smaller group, so rows 3 and 4 go
    y = np.array([[1, 0], [1, 1], [1, 1], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1], [0, 0], [0, 0]])
    g = np.array([0, 1, 1, 1, 1, 0, 0, 0, 0, 1])
    rows = alpha_balanced(y, g, alpha=2.0, seed=0)
    assert rows.tolist() == [0, 1, 2, 5, 6, 7, 8, 9]
    assert group_ratios(y[rows], g[rows]).tolist() == [2.0, 1.5, 5 / 3]


def test_balanced_data_is_kept_whole_and_the_seed_only_breaks_ties():
    y, g = skewed(2000, 1)
    assert len(alpha_balanced(y, g, alpha=1e6, seed=0)) == len(g)
    rows = alpha_balanced(y, g, alpha=1.0, seed=0)
    np.testing.assert_array_equal(rows, alpha_balanced(y, g, alpha=1.0, seed=0))
    again = alpha_balanced(y, g, alpha=1.0, seed=1)
    assert len(again) == pytest.approx(len(rows), rel=0.05) and not np.array_equal(again, rows)


def test_a_label_of_one_group_only_is_left_alone():
    y = np.array([[1, 0], [1, 0], [1, 1], [0, 1], [0, 1], [0, 0]])
    g = np.array([1, 1, 1, 0, 0, 0])  # label 0 only ever with group 1
    rows = alpha_balanced(y, g, alpha=1.0, seed=0)
    assert {0, 1} & set(rows.tolist())  # its images are not all dropped for the sake of balance
    assert np.isinf(group_ratios(y[rows], g[rows])[0])


@pytest.mark.parametrize("alpha, labels, g, message", [
    (0.5, [[1]], [0], "alpha: expected a number >= 1, got 0.5"),
    (float("nan"), [[1]], [0], "alpha: expected a number >= 1"),
    (2.0, [[2]], [0], "labels and protected must be 0/1"),
    (2.0, [1, 0], [0, 1], r"expected labels \(n, K\) and protected \(n,\)"),
])
def test_bad_input_is_one_clear_error(alpha, labels, g, message):
    with pytest.raises(DebiaslabError, match=message):
        alpha_balanced(np.array(labels), np.array(g), alpha=alpha)


@pytest.mark.parametrize("size, depth", [(16, 3), (17, 4), (32, 3), (8, 1)])
def test_the_mask_has_the_input_size_and_starts_almost_transparent(size, depth):
    torch.manual_seed(0)
    mask = MaskUNet(8, depth).eval()
    with torch.no_grad():
        out = mask(torch.randn(3, 3, size, size))
    assert out.shape == (3, 1, size, size)
    assert ((out > 0) & (out < 1)).all()
    assert float(out.mean()) == pytest.approx(float(torch.sigmoid(torch.tensor(MASK_BIAS))), abs=0.05)


def test_the_predicting_model_is_the_classifier_on_the_masked_image():
    torch.manual_seed(0)
    params = TrainParams(width=8, precision="fp32", channels_last=False)
    method = make_method("image_adversarial", 3, params, torch.device("cpu"), image_size=16)
    model = method.model.eval()
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        expected = model.classifier(x * model.mask(x))
        torch.testing.assert_close(method.predict(x), expected)
        assert not torch.allclose(method.predict(x), model.classifier(x))  # the mask is applied
