"""Leakage (Wang et al., ICCV 2019): attacker, balanced subsamples, folding, natural leakage curve.

The attacker runs with few epochs on a few thousand rows so the whole file stays well under a minute.
"""

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from debiaslab import leakage as L
from debiaslab.errors import DebiaslabError

FAST = {"epochs": 15}


def _split(n: int, n_train: int, n_val: int) -> np.ndarray:
    split = np.full(n, 2)
    split[:n_train] = 0
    split[n_train : n_train + n_val] = 1
    return split


@pytest.fixture
def independent():
    """5 random label columns and an unrelated protected attribute; a large test split keeps chance tight."""
    rng = np.random.default_rng(0)
    n = 6000
    return rng.integers(0, 2, (n, 5)), rng.integers(0, 2, n), _split(n, 1200, 800)


# --------------------------------------------------------------------------- attacker
def test_attacker_is_the_reference_mlp():
    model = L.Attacker(7)
    kinds = [type(m).__name__ for m in model.net]
    assert kinds == ["BatchNorm1d", "Linear"] + ["BatchNorm1d", "LeakyReLU", "Linear"] * 3
    shapes = [(m.in_features, m.out_features) for m in model.net if isinstance(m, torch.nn.Linear)]
    assert shapes == [(7, 300), (300, 300), (300, 300), (300, 2)]
    assert model(torch.zeros(4, 7)).shape == (4, 2)
    assert [m.out_features for m in L.Attacker(3, hidden=16).net if isinstance(m, torch.nn.Linear)] == [
        16,
        16,
        16,
        2,
    ]


def test_attacker_selects_on_val_not_test():
    """Flipping every test label leaves the chosen model unchanged, so test accuracy becomes 1 − acc."""
    rng = np.random.default_rng(1)
    g = rng.integers(0, 2, 1300)
    x = np.c_[np.where(rng.random(1300) < 0.7, g, 1 - g), rng.normal(size=(1300, 3))]
    parts = (x[:700], g[:700], x[700:1000], g[700:1000], x[1000:])
    acc = L.train_attacker(*parts, g[1000:], epochs=8, seed=3)
    flipped = L.train_attacker(*parts, 1 - g[1000:], epochs=8, seed=3)
    assert 0.6 < acc < 0.8
    assert acc + flipped == pytest.approx(1.0, abs=1e-12)


def test_train_attacker_survives_a_last_batch_of_one_row():
    rng = np.random.default_rng(2)
    g = rng.integers(0, 2, 129 + 40)
    x = rng.normal(size=(len(g), 2)) + g[:, None]
    threads = torch.get_num_threads()
    acc = L.train_attacker(x[:129], g[:129], x[129:149], g[129:149], x[149:], g[149:], epochs=2,
                           num_threads=1)
    assert 0.0 <= acc <= 1.0
    assert torch.get_num_threads() == threads  # a thread count asked for is restored afterwards


def one_by_one(task, seed, *, epochs, batch_size=128, lr=5e-5, weight_decay=1e-5):
    """The attacker trained alone, as a plain loop over one :class:`Attacker` (the way it was
    trained before the stacked training existed): the reference the stack is checked against."""
    x_train, g_train, x_val, g_val, x_test, g_test = (torch.as_tensor(np.asarray(a)) for a in task)
    x_train, x_val, x_test = (x.float() for x in (x_train, x_val, x_test))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = L.Attacker(x_train.shape[1])
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    best, best_state = -1.0, None
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x_train), generator=gen)
        for start in range(0, len(x_train) - 1, batch_size):
            rows = perm[start:start + batch_size]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x_train[rows]), g_train[rows].long()).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(x_val).argmax(1) == g_val).double().mean().item()
        if acc > best:
            best, best_state = acc, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    with torch.no_grad():
        return (model(x_test).argmax(1) == g_test).double().mean().item()


def test_stacked_attackers_train_as_each_would_alone():
    """Three attackers on three tasks at once: each reaches what it reaches trained alone (same
    seed, same data), and a task of another shape trains in its own stack."""
    rng = np.random.default_rng(4)
    tasks = []
    for k, n in enumerate((600, 600, 600, 400)):
        g = rng.integers(0, 2, n + 400)
        x = np.c_[np.where(rng.random(len(g)) < 0.6 + 0.1 * k, g, 1 - g), rng.normal(size=(len(g), 3))]
        tasks.append((x[:n], g[:n], x[n:n + 200], g[n:n + 200], x[n + 200:], g[n + 200:]))
    seeds = [5, 6, 7, 8]
    together = L.train_attackers(tasks, seeds=seeds, epochs=4, batch_size=64)
    alone = [one_by_one(t, s, epochs=4, batch_size=64) for t, s in zip(tasks, seeds, strict=True)]
    assert together == pytest.approx(alone, abs=0.011)  # at most two of 200 test rows differ
    assert len(set(together)) > 1  # four different tasks, not one result copied


def test_stack_runs_each_network_on_its_own_batch():
    torch.manual_seed(0)
    attackers = [L.Attacker(3, hidden=8) for _ in range(3)]
    stack = L.AttackerStack(attackers)
    x = torch.randn(3, 16, 3)
    for mode in (True, False):
        stack.train(mode)
        for a in attackers:
            a.train(mode)
        out = stack(x)
        for k, a in enumerate(attackers):
            torch.testing.assert_close(out[k], a(x[k]))  # in training mode both update their BN stats


# --------------------------------------------------------------------------- small pieces
def test_balanced_indices_have_equal_group_counts():
    g = np.r_[np.zeros(70, int), np.ones(30, int)]
    idx = L.balanced_indices(g, np.random.default_rng(0))
    assert np.bincount(g[idx]).tolist() == [30, 30]
    assert np.all(np.diff(idx) > 0)  # sorted, no repeats
    other = L.balanced_indices(g, np.random.default_rng(1))
    assert not np.array_equal(idx, other)  # the majority group is subsampled at random
    with pytest.raises(DebiaslabError, match="g=1"):
        L.balanced_indices(np.zeros(5, int), np.random.default_rng(0))


def test_fold_by_hand():
    assert L.fold(0.3) == pytest.approx(0.7)
    assert L.fold(0.6) == pytest.approx(0.6)
    assert L.fold(0.5) == 0.5
    np.testing.assert_allclose(L.fold(np.array([0.0, 0.25, 1.0])), [1.0, 0.75, 1.0])


def test_perturb_labels():
    y = np.random.default_rng(0).integers(0, 2, (4000, 5))
    assert np.array_equal(L.perturb_labels(y, 0.0, np.random.default_rng(1)), y)
    assert np.array_equal(L.perturb_labels(y, 1.0, np.random.default_rng(1)), 1 - y)
    rate = (L.perturb_labels(y, 0.2, np.random.default_rng(1)) != y).mean()
    assert rate == pytest.approx(0.2, abs=0.01)  # 20,000 bits: sd 0.003
    small = L.perturb_labels(y, 0.1, np.random.default_rng(1)) != y
    assert not (small & ~(L.perturb_labels(y, 0.2, np.random.default_rng(1)) != y)).any()  # nested
    with pytest.raises(DebiaslabError):
        L.perturb_labels(y, 1.5, np.random.default_rng(1))


def test_macro_f1_matches_sklearn():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 2, (500, 6))
    p = np.where(rng.random(t.shape) < 0.3, 1 - t, t)
    p[:, 4] = 0  # a column with no predicted positives
    t[:, 5], p[:, 5] = 0, 0  # a column with nothing at all: sklearn scores it 0
    with pytest.warns(Warning):
        expected = f1_score(t, p, average="macro")
    assert L.macro_f1(t, p) == pytest.approx(expected, abs=1e-12)
    assert L.macro_f1(t[:, 0], p[:, 0]) == pytest.approx(f1_score(t[:, 0], p[:, 0]), abs=1e-12)
    assert L.macro_f1(t, t) == pytest.approx(5 / 6)


def test_leakage_at_f1_interpolates_and_clamps():
    curve = [  # deliberately unsorted by F1
        {"p": 0.2, "f1": 0.6, "mean": 0.60, "std": 0.0},
        {"p": 0.0, "f1": 1.0, "mean": 0.80, "std": 0.0},
        {"p": 0.1, "f1": 0.8, "mean": 0.70, "std": 0.0},
    ]
    assert L.leakage_at_f1(curve, 0.9) == pytest.approx(0.75)
    assert L.leakage_at_f1(curve, 0.7) == pytest.approx(0.65)
    assert L.leakage_at_f1(curve, 0.8) == pytest.approx(0.70)
    assert L.leakage_at_f1(curve, 0.3) == pytest.approx(0.60)  # clamped below
    assert L.leakage_at_f1(curve, 1.2) == pytest.approx(0.80)  # clamped above
    assert L.amplification(0.9, L.leakage_at_f1(curve, 0.9)) == pytest.approx(0.15)
    assert L.amplification({"mean": 0.7, "std": 0.0}, 0.75) == pytest.approx(-0.05)
    with pytest.raises(DebiaslabError):
        L.leakage_at_f1([], 0.5)


# --------------------------------------------------------------------------- leakage
def test_independent_labels_leak_nothing(independent):
    labels, g, split = independent
    out = L.leakage(labels, g, split, rounds=3, seed=0, **FAST)
    assert set(out) == {"mean", "std", "rounds"} and len(out["rounds"]) == 3
    assert all(v >= 0.5 for v in out["rounds"])
    assert abs(out["mean"] - 0.5) < 0.03


def test_chance_is_one_half_even_when_groups_are_imbalanced():
    """80 % of rows in g=0: predicting the majority would score 0.8 without balanced subsamples."""
    rng = np.random.default_rng(4)
    n = 8000
    labels, g = rng.integers(0, 2, (n, 5)), (rng.random(n) < 0.2).astype(int)
    out = L.leakage(labels, g, _split(n, 1500, 500), rounds=1, seed=0, **FAST)
    assert abs(out["mean"] - 0.5) < 0.04


def test_a_copy_of_g_leaks_everything(independent):
    labels, g, split = independent
    labels = np.c_[labels[:, :4], g]
    out = L.leakage(labels, g, split, rounds=2, seed=0, **FAST)
    assert out["mean"] > 0.95


def test_split_missing_a_group_raises(independent):
    labels, g, split = independent
    g = g.copy()
    g[split == 1] = 0
    with pytest.raises(DebiaslabError, match="val split has no rows with g=1"):
        L.leakage(labels, g, split, rounds=1, epochs=1)
    with pytest.raises(DebiaslabError, match="split"):
        L.leakage(labels, g, np.full(len(g), 3), rounds=1, epochs=1)


def test_same_seed_same_result_bit_for_bit():
    rng = np.random.default_rng(5)
    n = 1500
    g = rng.integers(0, 2, n)
    x = np.c_[np.where(rng.random(n) < 0.65, g, 1 - g), rng.integers(0, 2, (n, 3))]
    split = _split(n, 600, 300)
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()  # noqa: NPY002 - the legacy global RNG must stay untouched
    a = L.leakage(x, g, split, rounds=2, seed=11, epochs=4)
    b = L.leakage(x, g, split, rounds=2, seed=11, epochs=4)
    assert a == b  # floats compared exactly
    assert a["rounds"][0] != a["rounds"][1]  # rounds differ: their own subsamples and attackers
    assert torch.equal(torch.get_rng_state(), torch_state)  # global RNGs untouched
    assert np.array_equal(np.random.get_state()[1], np_state)  # noqa: NPY002


def test_natural_leakage_curve_falls_with_noise():
    rng = np.random.default_rng(6)
    n = 2400
    g = rng.integers(0, 2, n)
    labels = np.c_[np.where(rng.random(n) < 0.9, g, 1 - g), rng.integers(0, 2, (n, 2))]
    split = _split(n, 800, 400)
    curve = L.natural_leakage_curve(labels, g, split, p_grid=[0.0, 0.5], rounds=1, seed=0, epochs=6)
    assert [c["p"] for c in curve] == [0.0, 0.5]
    assert curve[0]["f1"] == 1.0  # p = 0: the labels themselves, dataset leakage
    assert curve[1]["f1"] == pytest.approx(0.5, abs=0.05)
    assert curve[0]["mean"] > 0.85  # λ_D ≈ 0.9 from the 90 % copy of g
    assert curve[1]["mean"] < 0.56  # p = 0.5 erases all information
    assert L.leakage_at_f1(curve, 1.0) == curve[0]["mean"]
