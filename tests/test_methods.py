"""Methods on the common trainer: losses per task, gradient reversal, balanced epochs."""

import numpy as np
import pytest
import torch

from debiaslab import params
from debiaslab.data import ArrayDataset, group_balanced_order
from debiaslab.device import seed_everything
from debiaslab.errors import DebiaslabError
from debiaslab.fair_sampling import FAIRNESS
from debiaslab.methods import METHODS, gradient_reversal, per_sample_loss
from debiaslab.params import METHOD_HPARAMS, TrainParams
from debiaslab.train import fit, load_checkpoint, make_method, predict_scores, save_checkpoint

CPU = torch.device("cpu")
PARAMS = TrainParams(epochs=3, width=8, batch_size=32, hflip=False)


def patches(n: int, seed: int, k: int = 3):
    """Label j is a bright patch in corner-row j; g is a patch elsewhere."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 100, (n, 16, 16, 3), dtype=np.uint8)
    y = rng.integers(0, 2, (n, k))
    g = rng.integers(0, 2, n)
    for j in range(k):
        images[y[:, j] == 1, 5 * j:5 * j + 3, 0:3] = 250
    images[g == 1, 12:15, 12:15] = 250
    return images, y, g


def test_per_sample_loss_shapes_and_values():
    y = torch.tensor([1.0, 0.0])
    logits = torch.tensor([[2.0], [-1.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], y, reduction="none")
    torch.testing.assert_close(per_sample_loss(logits, y), expected)
    multi = per_sample_loss(torch.zeros(4, 3), torch.ones(4, 3))
    torch.testing.assert_close(multi, torch.full((4,), np.log(2.0), dtype=torch.float32))
    ce = per_sample_loss(torch.tensor([[0.0, 0.0, 0.0]]), torch.tensor([2]))
    torch.testing.assert_close(ce, torch.tensor([np.log(3.0)], dtype=torch.float32))


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.ones(3, requires_grad=True)
    gradient_reversal(x, 2.5).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), -2.5))


def test_group_balanced_order_alternates_groups():
    g = np.array([0] * 10 + [1] * 4)
    order = group_balanced_order(g, torch.Generator().manual_seed(0))
    assert len(order) == 8 and len(set(order)) == 8
    np.testing.assert_array_equal(g[order], [0, 1] * 4)


def test_multilabel_erm_learns_every_label():
    gen = seed_everything(0)
    images, y, g = patches(384, 1)
    vi, vy, vg = patches(96, 2)
    method = make_method("erm", 3, PARAMS, CPU)
    result = fit(method, ArrayDataset(images, y, g), ArrayDataset(vi, vy, vg), PARAMS,
                 generator=gen, progress=False)
    assert result.best_val_score > 0.9  # mean AP over the three labels
    assert predict_scores(method, ArrayDataset(vi, vy)).shape == (96, 3)


def test_multiclass_erm_selects_on_accuracy():
    gen = seed_everything(0)
    images, y, _ = patches(384, 1)
    cls = y.argmax(1)  # a class index per image
    vi, vy, _ = patches(96, 2)
    method = make_method("erm", 3, PARAMS, CPU)
    result = fit(method, ArrayDataset(images, cls), ArrayDataset(vi, vy.argmax(1)), PARAMS,
                 generator=gen, progress=False)
    scores = predict_scores(method, ArrayDataset(vi, vy.argmax(1)))
    assert scores.shape == (96, 3) and np.allclose(scores.sum(1), 1, atol=1e-5)
    assert result.best_val_score == pytest.approx(max(h["val_score"] for h in result.history))


def test_adversarial_trains_and_round_trips(tmp_path):
    gen = seed_everything(0)
    images, y, g = patches(384, 1)
    vi, vy, vg = patches(96, 2)
    method = make_method("adversarial", 3, PARAMS, CPU, {"grl_weight": 1.0, "hidden": 16})
    result = fit(method, ArrayDataset(images, y, g), ArrayDataset(vi, vy, vg), PARAMS,
                 generator=gen, progress=False)
    assert {"train_loss", "train_adversary_loss", "train_adversary_acc"} <= set(result.history[0])
    save_checkpoint(tmp_path / "adv.pt", method, PARAMS, num_outputs=3)
    loaded, _ = load_checkpoint(tmp_path / "adv.pt", CPU)
    assert loaded.hparams == {"grl_weight": 1.0, "hidden": 16}
    np.testing.assert_array_equal(predict_scores(method, ArrayDataset(vi, vy)),
                                  predict_scores(loaded, ArrayDataset(vi, vy)))


def test_adversarial_needs_protected_labels_and_known_hparams():
    images, y, _ = patches(64, 1)
    method = make_method("adversarial", 3, PARAMS, CPU)
    with pytest.raises(DebiaslabError, match="no protected labels"):
        method.epoch_order(ArrayDataset(images, y), torch.Generator())
    with pytest.raises(DebiaslabError, match="unknown hyperparameter 'lamda'"):
        make_method("adversarial", 3, PARAMS, CPU, {"lamda": 1.0})


def test_every_method_takes_its_defaults_from_params():
    """One list of hyperparameters: params.METHOD_HPARAMS, which checks params.yaml without torch."""
    assert set(METHODS) == set(METHOD_HPARAMS)
    for name, cls in METHODS.items():
        assert cls.defaults is METHOD_HPARAMS[name], name
    assert FAIRNESS is params.FAIRNESS
    method = make_method("fairbatch", 1, PARAMS, CPU)
    assert method.hparams == {"fairness": "eo", "alpha": 0.005, "val_batch": 16}
