"""Methods on the common trainer: the registry, losses per task, gradient reversal, balanced epochs."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from debiaslab import params
from debiaslab.data import ArrayDataset, Batch, group_balanced_order
from debiaslab.device import seed_everything
from debiaslab.errors import DebiaslabError
from debiaslab.methods import METHODS, get_method, per_sample_loss
from debiaslab.methods.adversarial import gradient_reversal
from debiaslab.methods.fair_sampler import FAIRNESS
from debiaslab.params import METHOD_HPARAMS, TrainParams, declared_methods
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


def toy_context(cls, n_train: int, images, y, g) -> dict | None:
    """What a method declares it reads beyond the batch, built from the toy data."""
    keys, context = set(cls.context_keys), {}
    if "bias_selected" in keys:
        context["bias_selected"] = np.arange(n_train) % 2 == 0
    if "generated" in keys:  # the second half of the training rows stand for generated data
        context["generated"] = np.arange(n_train) >= n_train // 2
        context["val_real"] = context["val_generated"] = ArrayDataset(images[:64], y[:64], g[:64])
    assert keys <= {"bias_selected", "generated", "val_real", "val_generated"}, keys
    return context or None


@pytest.mark.parametrize("name", sorted(declared_methods()))
def test_every_registered_method_trains_predicts_and_round_trips(name, tmp_path):
    """DomainBed's test of its ALGORITHMS: every method module, found by name, through init,
    update, predict and a checkpoint round trip, on one binary task with a protected label."""
    cls = get_method(name)
    assert cls.name == name
    assert cls.defaults == METHOD_HPARAMS[name]  # the literal params.yaml is checked against
    seed_everything(0)
    images, y, g = patches(128, 1)
    y, num_outputs = y[:, 0], 2 if name in ("gce", "lff", "disent") else 1  # class indices: CE methods
    data = ArrayDataset(images, y, g)
    method = make_method(name, num_outputs, PARAMS, CPU, None, toy_context(cls, len(data), images, y, g),
                         image_size=16)
    method.setup(data, total_steps=4)
    order = np.asarray(method.epoch_order(data, torch.Generator().manual_seed(0))[:32])
    x = torch.as_tensor(images[order]).permute(0, 3, 1, 2).float() / 127.5 - 1
    target = torch.as_tensor(y[order], dtype=torch.long if num_outputs > 1 else torch.float32)
    logs = method.update(Batch(x, target, torch.as_tensor(g[order]), torch.as_tensor(order)))
    assert logs and all(np.isfinite(v) for v in logs.values()), logs
    save_checkpoint(tmp_path / "m.pt", method, PARAMS, num_outputs=num_outputs, image_size=16)
    loaded, _ = load_checkpoint(tmp_path / "m.pt", CPU)
    assert type(loaded) is cls
    np.testing.assert_array_equal(predict_scores(method, data), predict_scores(loaded, data))


def test_methods_are_imported_by_name_only_when_used():
    """A stage imports the method modules it trains and no others (so DVC tracks only those)."""
    code = ("import sys; from debiaslab import train; "
            "import debiaslab.methods as m; assert 'debiaslab.methods.lff' not in sys.modules; "
            "m.get_method('lff'); assert 'debiaslab.methods.lff' in sys.modules; "
            "assert 'debiaslab.methods.fairbatch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(DebiaslabError, match="unknown method 'os'"):
        get_method("os")  # only files of the methods package are ever imported


def test_a_new_method_is_one_module(tmp_path):
    """What params.yaml is checked against comes from the module's literals, without importing it."""
    (tmp_path / "helper.py").write_text("X = 1\n")
    (tmp_path / "mine.py").write_text(
        "import torch\nHPARAMS = {'strength': 1.0, 'mode': 'a'}\nMULTILABEL = True\n")
    assert declared_methods(tmp_path) == {
        "mine": {"hparams": {"strength": 1.0, "mode": "a"}, "multilabel": True}}
    assert FAIRNESS is params.FAIRNESS
    method = make_method("fairbatch_step", 1, PARAMS, CPU)
    assert method.hparams == {"fairness": "eo", "alpha": 0.005, "val_batch": 16}
    assert set(METHODS) <= set(METHOD_HPARAMS)
