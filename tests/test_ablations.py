"""The GAN paper's ablations: under-represented hyperplane fits (its linear_underrep.py) and the
parameters of both ablations."""

import numpy as np
import pytest

from debiaslab.errors import DebiaslabError
from debiaslab.gan_debias import underrep_rows
from debiaslab.params import LatentEditParams, load_params


def test_underrep_keeps_count_of_the_rare_value_per_group_and_the_rest_of_the_other():
    rng = np.random.default_rng(0)
    target, protected = rng.integers(0, 2, 1000), rng.integers(0, 2, 1000)
    rows = underrep_rows(target, protected, value=1, count=20)
    assert np.all(np.diff(rows) > 0)
    cells = {(t, g): int(((target[rows] == t) & (protected[rows] == g)).sum())
             for t in (0, 1) for g in (0, 1)}
    assert cells[(1, 0)] == cells[(1, 1)] == 20
    for g in (0, 1):  # (1000 - 40) / 2 = 480 wanted of the other value, all ~250 there are taken
        assert cells[(0, g)] == min(480, int(((target == 0) & (protected == g)).sum()))
    # the first latents of each cell, in order, as the original takes idx[i][:number]
    first = np.flatnonzero((target == 1) & (protected == 0))[:20]
    assert set(first) <= set(rows.tolist())


def test_a_cell_with_fewer_latents_gives_what_it_has():
    target = np.array([1, 1, 0, 0, 0, 0, 0, 0])
    protected = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    assert underrep_rows(target, protected, value=0, count=1).tolist() == [0, 1, 2, 3]
    # other value: (8 - 2) // 2 = 3 per group wanted, 1 each there


def test_the_ablation_params_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r"expected 2 × underrep_count < n_fit"):
        LatentEditParams(n_fit=1000, underrep_value=1, underrep_count=500)
    path = tmp_path / "params.yaml"
    path.write_text("latent_edit:\n  underrep_value: 2\n")
    with pytest.raises(DebiaslabError, match=r"latent_edit.underrep_value: expected one of 0, 1 or null"):
        load_params("latent_edit", path=path)
    path.write_text("full_skew:\n  opposite: maybe\n")
    with pytest.raises(DebiaslabError, match=r"full_skew.opposite: expected true or false"):
        load_params("full_skew", path=path)
    path.write_text("report:\n  categories: {x: [Smiling, Male_Pattern]}\n")
    with pytest.raises(DebiaslabError, match=r"categories.x: unknown attribute 'Male_Pattern'"):
        load_params("report", path=path)
