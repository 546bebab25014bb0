"""GCE, the per-sample EMA, LfF's weights, BiasEnsemble's vote, and LfF/DisEnt on a toy task."""

import numpy as np
import pytest
import torch

from debiaslab.bias_ensemble import selection_quality, vote_bias_aligned
from debiaslab.data import ArrayDataset
from debiaslab.device import seed_everything
from debiaslab.errors import DebiaslabError
from debiaslab.methods.biased_auxiliary import SampleEMA, gce_loss, relative_difficulty
from debiaslab.params import TrainParams
from debiaslab.train import fit, load_checkpoint, make_method, predict_scores, save_checkpoint

CPU = torch.device("cpu")


def test_gce_gradient_is_that_of_its_definition():
    """∇ of CE·p_y^q (p_y detached) equals ∇ of (1 − p_y^q)/q, i.e. p_y^q · ∇CE."""
    torch.manual_seed(0)
    logits = torch.randn(5, 4, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 1])
    gce_loss(logits, y, q=0.7).sum().backward()
    ours = logits.grad.clone()
    logits.grad = None
    p_y = torch.softmax(logits, 1).gather(1, y[:, None]).squeeze(1)
    ((1 - p_y ** 0.7) / 0.7).sum().backward()
    torch.testing.assert_close(ours, logits.grad)


def test_sample_ema_by_hand():
    labels = torch.tensor([0, 0, 1])
    ema = SampleEMA(labels, num_classes=2, alpha=0.7)
    ema.update(torch.tensor([0, 2]), torch.tensor([2.0, 4.0]))  # first visits store the loss
    torch.testing.assert_close(ema.value, torch.tensor([2.0, 0.0, 4.0]))
    ema.update(torch.tensor([0, 1]), torch.tensor([1.0, 3.0]))  # 0.7·2 + 0.3·1 = 1.7; first: 3
    torch.testing.assert_close(ema.value, torch.tensor([1.7, 3.0, 4.0]))
    # class-wise normalisation: class 0's max is 3.0, class 1's is 4.0
    torch.testing.assert_close(ema.normalised(torch.tensor([0, 1, 2])),
                               torch.tensor([1.7 / 3.0, 1.0, 1.0]), rtol=1e-6, atol=1e-6)


def test_relative_difficulty_by_hand():
    labels = torch.tensor([0, 0])
    ema_b, ema_d = SampleEMA(labels, 1, 0.7), SampleEMA(labels, 1, 0.7)
    ema_b.update(torch.tensor([0, 1]), torch.tensor([1.0, 4.0]))  # normalised: 0.25, 1.0
    ema_d.update(torch.tensor([0, 1]), torch.tensor([2.0, 2.0]))  # normalised: 1.0, 1.0
    w = relative_difficulty(ema_b, ema_d, torch.tensor([0, 1]))
    torch.testing.assert_close(w, torch.tensor([0.25 / 1.25, 0.5]), rtol=1e-6, atol=1e-6)


def test_vote_and_selection_quality_by_hand():
    probs = np.array([[0.999, 0.5, 0.995, 0.999],
                      [0.999, 0.999, 0.2, 0.999],
                      [0.995, 0.3, 0.999, 0.1],
                      [0.1, 0.2, 0.999, 0.999],
                      [0.999, 0.999, 0.3, 0.2]])
    selected = vote_bias_aligned(probs, tau=0.99, min_votes=3)
    np.testing.assert_array_equal(selected, [True, False, True, True])  # votes 5, 2, 4, 3
    q = selection_quality(selected, aligned=np.array([True, False, False, True]))
    assert q["aligned_precision"] == pytest.approx(2 / 3)
    assert q["conflicting_recall"] == pytest.approx(1 / 2)


def colored_toy(n: int, seed: int, conflict: float):
    """Class = a faint bar in row-band y (hard); bias = a strong tint of channel b (easy);
    a sample is bias-aligned when b == y, as in Colored MNIST."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    bias = np.where(rng.random(n) < conflict, rng.integers(0, 3, n), y)
    images = rng.integers(0, 30, (n, 8, 8, 3)).astype(np.int64)
    images[np.arange(n), :, :, bias] += 150  # the bias colour fills the image
    for c in range(3):
        images[y == c, 2 * c:2 * c + 2, 1:7] += 40  # the class: a faint bar
    return ArrayDataset(np.clip(images, 0, 255).astype(np.uint8), y), bias


PARAMS = TrainParams(arch="mlp", epochs=3, batch_size=32, hflip=False, precision="fp32")


@pytest.mark.parametrize(("name", "bias_ensemble"), [("lff", False), ("disent", False),
                                                    ("lff", True), ("disent", True)])
def test_methods_train_and_round_trip(name, bias_ensemble, tmp_path):
    gen = seed_everything(0)
    train, bias = colored_toy(300, 1, conflict=0.1)
    val, _ = colored_toy(90, 2, conflict=1.0)
    context = {"bias_selected": bias == train.y} if bias_ensemble else None
    method = make_method(name, 3, PARAMS, CPU, {"swap_after": 0.3} if "disent" in name else None,
                         context, image_size=8)
    result = fit(method, train, val, PARAMS, generator=gen, progress=False)
    assert np.isfinite(result.history[-1]["train_loss"])
    save_checkpoint(tmp_path / "m.pt", method, PARAMS, num_outputs=3, image_size=8)
    loaded, _ = load_checkpoint(tmp_path / "m.pt", CPU)  # no selection needed to predict
    np.testing.assert_array_equal(predict_scores(method, val), predict_scores(loaded, val))


def test_disent_swaps_only_after_warm_up():
    train, _ = colored_toy(64, 1, conflict=0.1)
    method = make_method("disent", 3, PARAMS, CPU, {"swap_after": 0.5}, image_size=8)
    method.setup(train, total_steps=10)
    assert method.swap_step == 5


def test_bias_ensemble_selection_must_cover_the_training_set():
    train, _ = colored_toy(64, 1, conflict=0.1)
    method = make_method("lff", 3, PARAMS, CPU, context={"bias_selected": np.ones(10, bool)},
                         image_size=8)
    with pytest.raises(DebiaslabError, match="10 entries for 64 training samples"):
        method.setup(train, total_steps=4)


@pytest.mark.parametrize("name", ["lff", "disent"])
def test_weight_is_higher_on_bias_conflicting_samples(name):
    """The point of LfF and DisEnt: after training, W is larger where the bias fails."""
    gen = seed_everything(0)
    train, bias = colored_toy(600, 1, conflict=0.1)
    val, _ = colored_toy(90, 2, conflict=1.0)
    params = TrainParams(arch="mlp", epochs=4, batch_size=32, hflip=False, precision="fp32")
    method = make_method(name, 3, params, CPU, image_size=8)
    fit(method, train, val, params, generator=gen, progress=False)
    index = torch.arange(len(train))
    w = relative_difficulty(method.ema_b, method.ema_d, index).numpy()
    aligned = bias == train.y
    assert w[~aligned].mean() > w[aligned].mean() + 0.2
