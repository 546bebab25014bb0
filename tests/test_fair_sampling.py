"""FairBatch and Dr-Fairness: batch composition, the λ updates by hand, errors, short training runs."""

import numpy as np
import pytest
import torch
from torch import nn

from debiaslab.data import ArrayDataset
from debiaslab.device import seed_everything
from debiaslab.errors import DebiaslabError
from debiaslab.methods.drfairness import DrFairness
from debiaslab.methods.fair_sampler import (
    CellCursor,
    compose_counts,
    fairbatch_targets,
    hypergradient_scores,
    largest_remainder,
)
from debiaslab.methods.fairbatch import dp_losses, epoch_move
from debiaslab.params import TrainParams
from debiaslab.train import fit, make_method

CPU = torch.device("cpu")
PARAMS = TrainParams(arch="mlp", epochs=2, batch_size=32, hflip=False, precision="fp32")


def cells_dataset(sizes: dict, seed: int, size: int = 8) -> ArrayDataset:
    """Exactly sizes[(y, g)] rows per cell: a bright top half for y = 1, a green left half for g = 1."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.full(n, t) for (t, _), n in sizes.items()])
    g = np.concatenate([np.full(n, k) for (_, k), n in sizes.items()])
    images = rng.integers(0, 60, (len(y), size, size, 3))
    images[:, :size // 2, :, 0] += 80 * y[:, None, None]
    images[:, :, :size // 2, 1] += 120 * g[:, None, None]
    return ArrayDataset(np.clip(images, 0, 255).astype(np.uint8), y, g)


def concat(*parts: ArrayDataset) -> ArrayDataset:
    return ArrayDataset(np.concatenate([p.images for p in parts]), np.concatenate([p.y for p in parts]),
                        np.concatenate([p.g for p in parts]))


REAL = {(0, 0): 20, (0, 1): 10, (1, 0): 10, (1, 1): 20}  # 60 real rows, labels half and half
GENERATED = {(0, 0): 5, (0, 1): 5, (1, 0): 5, (1, 1): 5}


def drfairness_setup(hparams=None, seed=0):
    """A Dr-Fairness method on 60 real + 20 generated rows (the generated ones last), set up."""
    train = concat(cells_dataset(REAL, seed), cells_dataset(GENERATED, seed + 1))
    context = {"generated": np.r_[np.zeros(60, bool), np.ones(20, bool)],
               "val_real": cells_dataset({c: 6 for c in REAL}, seed + 2),
               "val_generated": cells_dataset({c: 6 for c in REAL}, seed + 3)}
    method = make_method("drfairness", 1, PARAMS, CPU, hparams, context, image_size=8)
    method.setup(train, total_steps=10)
    return method, train, context


def source_counts(index, train, generated) -> np.ndarray:
    """(2, 2, 2) counts of ``index`` per (y, g, source)."""
    counts = np.zeros((2, 2, 2), int)
    np.add.at(counts, (train.y[index], train.g[index], generated[index].astype(int)), 1)
    return counts


# --------------------------------------------------------------------------- composition
def test_largest_remainder_is_exact_and_never_feeds_empty_cells():
    np.testing.assert_array_equal(largest_remainder([1.5, 1.5, 0.0, 2.0], 5), [2, 1, 0, 2])
    np.testing.assert_array_equal(largest_remainder([0.2, 0.3, 0.5, 0.0], 1), [0, 0, 1, 0])
    np.testing.assert_array_equal(largest_remainder([2.9999999997, 0.0000000003], 3), [3, 0])
    rng = np.random.default_rng(0)
    for _ in range(50):
        quotas = rng.dirichlet(np.ones(4)) * 37
        counts = largest_remainder(quotas, 37)
        assert counts.sum() == 37
        assert np.all((counts == np.floor(quotas)) | (counts == np.ceil(quotas)))


@pytest.mark.parametrize(("lam", "mu", "expected"), [
    # S_y = 20 per label; real λ·μ·20, generated λ·(1−μ)·20
    ([[0.5, 0.5], [0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]], [[[5, 5], [5, 5]], [[5, 5], [5, 5]]]),
    ([[0.25, 0.75], [0.75, 0.25]], [[0.6, 0.2], [1.0, 0.0]], [[[3, 2], [3, 12]], [[15, 0], [0, 5]]]),
    ([[1.0, 0.0], [0.1, 0.9]], [[0.5, 0.5], [0.5, 0.5]], [[[10, 10], [0, 0]], [[1, 1], [9, 9]]]),
])
def test_compose_counts_match_lambda_and_mu_exactly(lam, mu, expected):
    counts = compose_counts([0.5, 0.5], lam, mu, 40)
    np.testing.assert_array_equal(counts, expected)


def test_ties_go_to_random_cells_with_a_generator():
    rng = np.random.default_rng(0)
    firsts = [largest_remainder([2.5, 2.5, 2.5, 2.5], 10, rng)[0] for _ in range(40)]
    assert set(firsts) == {2, 3}
    assert all(largest_remainder([2.5] * 4, 10, rng).sum() == 10 for _ in range(10))


def test_compose_counts_sum_to_the_batch_and_keep_the_label_mix():
    rng = np.random.default_rng(1)
    for batch_size in (1, 7, 33, 128):
        lam = rng.dirichlet(np.ones(2), size=2)
        counts = compose_counts([0.3, 0.7], lam, rng.random((2, 2)), batch_size)
        assert counts.sum() == batch_size
        assert abs(counts[1].sum() - 0.7 * batch_size) < 1


def test_cell_cursor_draws_without_replacement_until_the_cell_runs_out():
    cursor = CellCursor(np.arange(10, 15), np.random.default_rng(0))
    first = cursor.take(5)
    assert sorted(first) == [10, 11, 12, 13, 14]
    assert len(cursor.take(12)) == 12  # more than the cell: reshuffles and goes on


def test_method_batches_follow_the_current_lambda_and_mu():
    method, train, context = drfairness_setup()
    np.testing.assert_allclose(method.lam, [[2 / 3, 1 / 3], [1 / 3, 2 / 3]])  # real proportions
    np.testing.assert_allclose(method.mu, 0.5)
    order = method.epoch_order(train, torch.Generator().manual_seed(0))
    assert len(order) == 60  # one epoch visits as many samples as there are real rows
    method.set_sampler([[0.25, 0.75], [0.75, 0.25]], [[0.6, 0.2], [1.0, 0.0]])
    np.testing.assert_array_equal(source_counts(order[0:40], train, context["generated"]),
                                  [[[3, 2], [3, 12]], [[15, 0], [0, 5]]])
    method.set_sampler([[0.5, 0.5], [0.5, 0.5]], [[0.6, 0.4], [0.6, 0.4]])  # the next slice follows
    np.testing.assert_array_equal(source_counts(order[40:80], train, context["generated"]),
                                  [[[3, 2], [2, 3]], [[3, 2], [2, 3]]])  # 20 left: 10 per label


def test_fairbatch_uses_real_data_only():
    train = cells_dataset(REAL, 0)
    method = make_method("fairbatch", 1, PARAMS, CPU, image_size=8)
    method.setup(train, total_steps=4)
    order = method.epoch_order(train, torch.Generator().manual_seed(0))
    method.set_sampler([[0.5, 0.5], [0.2, 0.8]])
    index = order[0:40]
    np.testing.assert_array_equal(source_counts(index, train, np.zeros(60, bool))[..., 0],
                                  [[10, 10], [4, 16]])


# --------------------------------------------------------------------------- λ updates
SHARE = torch.full((2, 2), 0.25)


def test_fairbatch_moves_lambda_toward_the_larger_loss():
    losses = torch.tensor([[0.3, 0.9], [0.8, 0.2]])  # y=0: group 1 worse; y=1: group 0 worse
    assert fairbatch_targets(losses, "eo", SHARE) == [(0, 1), (1, 0)]
    assert fairbatch_targets(losses, "eqopp", SHARE) == [(1, 0)]
    # dp: deficit_g = ½ℓ(1, g) − ½ℓ(0, g) = [0.25, −0.35]: group 0 is selected too rarely
    assert fairbatch_targets(losses, "dp", SHARE) == [(0, 1), (1, 0)]
    method = make_method("fairbatch_step", 1, PARAMS, CPU, {"alpha": 0.1}, image_size=8)
    method.setup(cells_dataset(REAL, 0), total_steps=4)
    method.set_sampler([[0.5, 0.5], [0.95, 0.05]])
    method.move(losses)
    np.testing.assert_allclose(method.lam, [[0.4, 0.6], [1.0, 0.0]])  # clipped at 1


def test_original_fairbatch_moves_one_label_per_epoch():
    """The original's rules (FairBatchSampler.adjust_lambda), on hand-made cell losses."""
    lam = np.array([[0.5, 0.5], [0.3, 0.7]])
    losses = np.array([[0.3, 0.9], [0.8, 0.2]])  # gaps: y=0 0.6, y=1 0.6: a tie moves label 0
    np.testing.assert_allclose(epoch_move(lam, losses, "eo", 0.1), [[0.4, 0.6], [0.3, 0.7]])
    losses = np.array([[0.3, 0.4], [0.8, 0.2]])  # y=1's gap is larger: only label 1 moves, to g=0
    np.testing.assert_allclose(epoch_move(lam, losses, "eo", 0.1), [[0.5, 0.5], [0.4, 0.6]])
    np.testing.assert_allclose(epoch_move(lam, np.array([[0.3, 0.9], [0.2, 0.2]]), "eqopp", 0.1),
                               [[0.5, 0.5], [0.4, 0.6]])  # label 1 only; equal losses: toward g=0
    # dp: label 0 moves away from the group with the larger loss of being called positive
    np.testing.assert_allclose(epoch_move(lam, np.array([[0.3, 0.9], [0.5, 0.5]]), "dp", 0.1),
                               [[0.6, 0.4], [0.3, 0.7]])
    np.testing.assert_allclose(epoch_move(np.array([[0.5, 0.5], [0.98, 0.02]]), losses, "eo", 0.1),
                               [[0.5, 0.5], [1.0, 0.0]])  # λ[1, 1] clipped at 0
    # dp losses: summed per cell, divided by the group's size (3 in g=0, 2 in g=1), not the cell's
    y, g = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0]), torch.tensor([0, 0, 0, 1, 1])
    torch.testing.assert_close(dp_losses(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]), y, g),
                               torch.tensor([[1 / 3, 4 / 2], [5 / 3, 5 / 2]]))


def test_original_fairbatch_keeps_lambda_within_an_epoch():
    method, _ = run("fairbatch")
    lams = [lam for _, lam, _ in method.trajectory]
    np.testing.assert_array_equal(lams[1], lams[2])  # steps 1 and 2: one epoch, one λ
    assert not np.array_equal(lams[2], lams[3])  # the second epoch's update
    assert not np.array_equal(lams[0], lams[1])  # the first one's, before its first batch


class OneFeature(nn.Module):
    """ŷ = 4·x[pixel (0, 0), red]: confident on group 0 (x = ±1), hesitant on group 1 (±0.25).

    Without a bias every cell's loss gradient has the same sign, so upweighting a cell cannot hurt
    another label's gap (with a bias, it can: the hypergradient then rightly says otherwise).
    """

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            self.head.weight.fill_(4.0)

    def embed(self, x):
        return x[:, 0, 0, 0:1]

    def forward(self, x):
        return self.head(self.embed(x))


def one_feature_data(per_cell: int) -> ArrayDataset:
    pixel = {(0, 0): 0, (1, 0): 255, (0, 1): 96, (1, 1): 159}  # x = −1, 1, −0.247, 0.247
    y, g = np.repeat([0, 0, 1, 1], per_cell), np.tile(np.repeat([0, 1], per_cell), 2)
    images = np.zeros((len(y), 2, 2, 3), np.uint8)
    images[:, 0, 0, 0] = [pixel[t, k] for t, k in zip(y, g, strict=True)]
    return ArrayDataset(images, y, g)


@pytest.mark.parametrize(("fairness", "k"), [("eo", 20.0), ("eo", 0.0), ("eqopp", 0.0)])
def test_drfairness_hypergradient_moves_lambda_toward_the_larger_real_loss(fairness, k):
    train = concat(one_feature_data(4), one_feature_data(2))
    context = {"generated": np.r_[np.zeros(16, bool), np.ones(8, bool)],
               "val_real": one_feature_data(3), "val_generated": one_feature_data(3)}
    params = TrainParams(arch="mlp", precision="fp32", channels_last=False)
    method = DrFairness(OneFeature, params, CPU, {"fairness": fairness, "k": k}, context)
    method.setup(train, total_steps=1)
    before = method.lam.copy()
    logs = method.adapt()
    assert logs["gap"] > 0.2  # group 1's loss (≈0.31) is far above group 0's (≈0.02)
    for y in (0, 1):
        assert method.lam[y, 1] > before[y, 1] + 1e-3


def test_hypergradient_scores_equal_the_double_backward_form():
    """−∂/∂w (∂F/∂θ · ∂G/∂θ) with G = Σ w_c ℓ_c, by double backward, equals −s."""
    torch.manual_seed(0)
    layer = nn.Linear(3, 1)
    features, y = torch.randn(12, 3), torch.randint(0, 2, (12,)).float()
    loss = nn.functional.binary_cross_entropy_with_logits(layer(features).squeeze(1), y, reduction="none")
    cells = torch.stack([loss[i::4].mean() for i in range(4)]).view(2, 2)
    params = list(layer.parameters())
    outer = cells.max() + 3 * cells.mean()
    scores = hypergradient_scores(outer, cells, params)
    w = torch.rand(2, 2, requires_grad=True)
    outer_grad = torch.autograd.grad(outer, params, retain_graph=True)
    inner_grad = torch.autograd.grad((w * cells).sum(), params, create_graph=True, retain_graph=True)
    direct = -sum((a * b).sum() for a, b in zip(outer_grad, inner_grad, strict=True))
    torch.testing.assert_close(torch.autograd.grad(direct, w)[0], -scores)


# --------------------------------------------------------------------------- errors
def test_a_cell_without_generated_data_is_a_clear_error():
    train = concat(cells_dataset(REAL, 0), cells_dataset({(0, 0): 3, (0, 1): 3, (1, 1): 3}, 1))
    context = {"generated": np.r_[np.zeros(60, bool), np.ones(9, bool)],
               "val_real": cells_dataset(REAL, 2), "val_generated": cells_dataset(REAL, 3)}
    method = make_method("drfairness", 1, PARAMS, CPU, None, context, image_size=8)
    with pytest.raises(DebiaslabError, match=r"no generated samples for cell \(y=1, g=0\); generate"):
        method.setup(train, total_steps=4)


def test_missing_context_real_cells_and_bad_options_are_clear_errors():
    with pytest.raises(DebiaslabError, match="context is missing val_real, val_generated"):
        make_method("drfairness", 1, PARAMS, CPU, None, {"generated": np.zeros(3, bool)}, image_size=8)
    make_method("drfairness", 1, PARAMS, CPU, None, {"training": False}, image_size=8)  # to predict
    method = make_method("fairbatch", 1, PARAMS, CPU, image_size=8)
    with pytest.raises(DebiaslabError, match=r"no real samples for cell \(y=0, g=1\)"):
        method.setup(cells_dataset({(0, 0): 5, (1, 0): 5, (1, 1): 5}, 0), total_steps=4)
    with pytest.raises(DebiaslabError, match="fairness must be one of eo, eqopp, dp"):
        make_method("fairbatch", 1, PARAMS, CPU, {"fairness": "odds"}, image_size=8)
    method, train, context = drfairness_setup()
    context["generated"] = np.zeros(5, bool)
    with pytest.raises(DebiaslabError, match="has 5 entries for 80 training samples"):
        method.setup(train, total_steps=4)


# --------------------------------------------------------------------------- training
def run(name: str, seed: int = 0):
    gen = seed_everything(seed)
    val = cells_dataset({c: 8 for c in REAL}, 9)
    if name.startswith("fairbatch"):
        method = make_method(name, 1, PARAMS, CPU, {"alpha": 0.05}, image_size=8)
        train = cells_dataset(REAL, 0)
    else:
        method, train, _ = drfairness_setup({"lr": 0.05})
    result = fit(method, train, val, PARAMS, generator=gen, progress=False)
    return method, result


@pytest.mark.parametrize("name", ["fairbatch", "fairbatch_step", "drfairness"])
def test_short_training_runs_and_is_deterministic(name):
    method, result = run(name)
    last = result.history[-1]
    assert all(np.isfinite(v) for v in last.values())
    assert {"train_loss", "train_lambda_y1_g0"} <= set(last)
    assert ("train_gap" in last) == (name != "fairbatch")  # the original measures no per-step gap
    assert ("train_mu_y0_g1" in last) == (name == "drfairness")
    assert len(method.trajectory) == 1 + 2 * 2  # step 0, then 2 epochs of 60 / 32 → 2 batches
    step, lam, mu = method.trajectory[-1]
    assert step == 4 and np.allclose(lam.sum(1), 1) and np.all((mu > 0) & (mu <= 1))
    assert not np.allclose(lam, method.trajectory[0][1])  # λ moved
    again, result_again = run(name)
    assert result_again.history == result.history
    np.testing.assert_array_equal(again.trajectory[-1][1], lam)


# --------------------------------------------------------------------------- update_iter and EMA
def test_accumulated_step_averages_the_gradients_of_its_batches():
    """Two backward passes with accumulate=2 move the weights as one step on the mean loss."""
    torch.manual_seed(0)
    x, y = torch.randn(8, 2, 2, 3), torch.randint(0, 2, (8,)).float()
    methods = [make_method("erm", 1, PARAMS, CPU, image_size=2) for _ in range(2)]
    methods[1].model.load_state_dict(methods[0].model.state_dict())

    def loss(method, rows):
        return nn.functional.binary_cross_entropy_with_logits(method.model(x[rows]).squeeze(1), y[rows])

    first, second = slice(0, 4), slice(4, 8)
    assert not methods[0].step(loss(methods[0], first), accumulate=2)  # no step yet
    assert methods[0].step(loss(methods[0], second), accumulate=2)
    assert methods[1].step((loss(methods[1], first) + loss(methods[1], second)) / 2)
    for a, b in zip(methods[0].model.parameters(), methods[1].model.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_update_iter_steps_and_adapts_once_every_update_iter_batches():
    method, train, _ = drfairness_setup({"update_iter": 2, "ema_decay": 0.0})
    order = method.epoch_order(train, torch.Generator().manual_seed(0))
    logs = [method.update(train.batch(order[i * 8:(i + 1) * 8], CPU)) for i in range(4)]
    assert [set(log) == {"loss"} for log in logs] == [True, False, True, False]
    assert "gap" in logs[1] and len(method.trajectory) == 3  # step 0, then one per two batches


def test_ema_model_averages_the_trained_weights_and_is_what_is_saved(tmp_path):
    decay = 0.5
    method, train, _ = drfairness_setup({"ema_decay": decay})
    assert method.network is not method.model
    order = method.epoch_order(train, torch.Generator().manual_seed(0))
    expected = None
    for i in range(3):
        method.update(train.batch(order[i * 8:(i + 1) * 8], CPU))
        trained = [p.detach().clone() for p in method.network.parameters()]
        expected = trained if expected is None else [decay * e + (1 - decay) * t
                                                     for e, t in zip(expected, trained, strict=True)]
    for kept, want, now in zip(method.model.parameters(), expected, method.network.parameters(), strict=True):
        torch.testing.assert_close(kept, want)
        assert not torch.equal(kept, now)  # the average lags the trained weights
    assert method.state_dict().keys() == method.network.state_dict().keys()
    for key, value in method.state_dict().items():
        torch.testing.assert_close(value, method.model.state_dict()[key])
    # a checkpoint holds the average and predicts with it, without a second copy
    from debiaslab.train import load_checkpoint, predict_scores, save_checkpoint

    save_checkpoint(tmp_path / "m.pt", method, PARAMS, num_outputs=1, image_size=8)
    loaded, _ = load_checkpoint(tmp_path / "m.pt", CPU)
    assert loaded.network is loaded.model
    np.testing.assert_array_equal(predict_scores(loaded, train), predict_scores(method, train))


def test_without_ema_the_trained_network_predicts():
    method, _, _ = drfairness_setup({"ema_decay": 0})
    assert method.network is method.model


@pytest.mark.parametrize(("hparams", "message"), [
    ({"update_iter": 0}, "update_iter must be a positive integer"),
    ({"ema_decay": 1.0}, r"ema_decay must be a number in \[0, 1\) \(0: no average\)"),
    ({"ema_decay": -0.1}, r"ema_decay must be a number in \[0, 1\)"),
])
def test_bad_update_iter_and_ema_decay_are_clear_errors(hparams, message):
    with pytest.raises(DebiaslabError, match=message):
        drfairness_setup(hparams)


def test_fit_averages_a_log_over_the_batches_that_have_it():
    """With update_iter 2 the sampler logs come every other batch; the epoch means use those."""
    gen = seed_everything(0)
    method, train, _ = drfairness_setup({"lr": 0.05, "update_iter": 2})
    result = fit(method, train, cells_dataset({c: 8 for c in REAL}, 9), PARAMS, generator=gen,
                 progress=False)
    assert len(method.trajectory) == 1 + 2  # 2 epochs of 2 batches, one step per 2 batches
    for row, (_, lam, _) in zip(result.history, method.trajectory[1:], strict=True):
        assert row["train_lambda_y1_g0"] == pytest.approx(lam[1, 0])  # one logging batch an epoch
        assert np.isfinite(row["train_gap"])
