"""The training loop on a tiny learnable task: learns, is deterministic, checkpoints safely."""

import numpy as np
import pytest
import torch

from debiaslab.data import ArrayDataset
from debiaslab.device import seed_everything
from debiaslab.errors import DebiaslabError
from debiaslab.params import TrainParams
from debiaslab.train import epoch_steps, fit, load_checkpoint, make_method, predict_scores, save_checkpoint

CPU = torch.device("cpu")


def square_task(n: int, seed: int) -> ArrayDataset:
    """Noise images; class 1 has a bright 4x4 square at the top-left."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 120, (n, 16, 16, 3), dtype=np.uint8)
    y = rng.integers(0, 2, n)
    images[y == 1, 2:6, 2:6] = 250
    return ArrayDataset(images, y)


def train(params: TrainParams, seed: int = 0):
    gen = seed_everything(seed)
    method = make_method("erm", 1, params, CPU)
    result = fit(method, square_task(256, 1), square_task(64, 2), params, generator=gen,
                 progress=False)
    return method, result


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_learns_a_visible_pattern(precision):
    params = TrainParams(epochs=4, width=8, batch_size=32, precision=precision, hflip=False)
    _, result = train(params)
    assert result.best_val_score > 0.95
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.best_epoch == 1 + int(np.argmax([h["val_score"] for h in result.history]))


def test_same_seed_same_weights_bit_for_bit():
    params = TrainParams(epochs=2, width=8, batch_size=32)
    a, _ = train(params)
    b, _ = train(params)
    for (name, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_steps_count_optimiser_steps_and_cut_the_last_epoch_short():
    assert epoch_steps(0, 8, TrainParams(steps=20)) == range(0, 8)
    assert epoch_steps(2, 8, TrainParams(steps=20)) == range(16, 20)
    assert not epoch_steps(3, 8, TrainParams(steps=20))
    assert epoch_steps(5, 8, TrainParams(epochs=2)) == range(40, 48)  # epochs: every step, always
    seen = []
    params = TrainParams(epochs=1, steps=19, width=8, batch_size=32, lr=0.01, lr_decay_step=8,
                         lr_gamma=0.5)
    gen = seed_everything(0)
    method = make_method("erm", 1, params, CPU)
    update = method.update
    method.update = lambda b: (seen.append(method.optimizer.param_groups[0]["lr"]), update(b))[1]
    result = fit(method, square_task(256, 1), square_task(64, 2), params, generator=gen, progress=False)
    assert len(seen) == 19 and len(result.history) == 3  # 8 + 8 + 3 of 256 / 32 = 8 a epoch
    assert seen == [0.01] * 8 + [0.005] * 8 + [0.0025] * 3  # × lr_gamma every 8 steps
    with pytest.raises(ValueError, match="lr_gamma"):
        TrainParams(lr_gamma=0.0)


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    params = TrainParams(epochs=1, width=8, batch_size=32)
    method, _ = train(params)
    save_checkpoint(tmp_path / "m.pt", method, params, attribute="Square", num_outputs=1)
    torch.load(tmp_path / "m.pt", weights_only=True)  # nothing but tensors and plain data
    loaded, meta = load_checkpoint(tmp_path / "m.pt", CPU)
    data = square_task(32, 5)
    np.testing.assert_array_equal(predict_scores(method, data), predict_scores(loaded, data))
    assert meta["attribute"] == "Square"


def test_missing_or_corrupt_checkpoint(tmp_path):
    with pytest.raises(DebiaslabError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt", CPU)
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(DebiaslabError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "bad.pt", CPU)


def test_target_with_one_class_is_an_error():
    data = square_task(64, 1)
    one_class = ArrayDataset(data.images, np.zeros(len(data), int))
    params = TrainParams(epochs=1, width=8)
    method = make_method("erm", 1, params, CPU)
    with pytest.raises(DebiaslabError, match="only one class"):
        fit(method, one_class, data, params, generator=torch.Generator(), progress=False)


def test_unknown_method():
    with pytest.raises(DebiaslabError, match="unknown method 'magic'"):
        make_method("magic", 1, TrainParams(), CPU)


def test_diverging_training_stops_with_one_line():
    params = TrainParams(epochs=3, width=8, batch_size=32)
    object.__setattr__(params, "lr", float("inf"))  # past params validation: the run-time net
    method = make_method("erm", 1, params, CPU)
    with pytest.raises(DebiaslabError) as err:
        fit(method, square_task(128, 1), square_task(64, 2), params, generator=seed_everything(0),
            progress=False)
    assert str(err.value) == ("training diverged: the loss is nan in epoch 1 (lower the learning rate, "
                              "lr = inf, or check the data)")


def test_gan_checkpoint_where_a_classifier_is_expected(tmp_path):
    from debiaslab.gan import Generator, generator_config

    G = Generator(8, 4, 8)
    torch.save({"source": "train", "config": generator_config(G), "state_dict": G.state_dict()},
               tmp_path / "generator.pt")
    with pytest.raises(DebiaslabError) as err:
        load_checkpoint(tmp_path / "generator.pt", CPU)
    assert str(err.value) == (f"{tmp_path / 'generator.pt'}: not a classifier checkpoint written by a "
                              "training stage (missing keys: method, train, meta; it looks like a GAN "
                              "generator checkpoint)")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(DebiaslabError, match=r"list\.pt: not a classifier checkpoint .* \(it holds a list, "
                                             r"not a dict\)$"):
        load_checkpoint(tmp_path / "list.pt", CPU)


def test_checkpoint_of_another_width_is_one_line(tmp_path):
    params = TrainParams(epochs=1, width=8, batch_size=32)
    method, _ = train(params)
    save_checkpoint(tmp_path / "m.pt", method, params, num_outputs=1)
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)
    ckpt["train"]["width"] = 16  # the settings of one model, the weights of another
    torch.save(ckpt, tmp_path / "m.pt")
    with pytest.raises(DebiaslabError) as err:
        load_checkpoint(tmp_path / "m.pt", CPU)
    assert str(err.value) == (f"{tmp_path / 'm.pt'}: weights do not fit the model (first mismatch: "
                              "features.0.0.weight has shape [8,3,3,3], the model expects [16,3,3,3])")


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["meta"].update(num_outputs="two"), "meta num_outputs is 'two', expected a positive integer"),
    (lambda c: c.update(method="magic"), "unknown method 'magic'"),
    (lambda c: c["train"].update(arch="vgg"), "unknown architecture 'vgg'"),
    (lambda c: c["train"].update(bogus=1), "its train settings are not valid"),
    (lambda c: c.update(meta=[1]), "its method, train, hparams or meta entry has the wrong type"),
])
def test_malformed_checkpoint_entries_are_one_line(tmp_path, edit, message):
    params = TrainParams(epochs=1, width=8, batch_size=32)
    method = make_method("erm", 1, params, CPU)
    save_checkpoint(tmp_path / "m.pt", method, params, num_outputs=1)
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)
    edit(ckpt)
    torch.save(ckpt, tmp_path / "m.pt")
    with pytest.raises(DebiaslabError) as err:
        load_checkpoint(tmp_path / "m.pt", CPU)
    assert str(err.value).startswith(f"{tmp_path / 'm.pt'}: ") and message in str(err.value)
    assert "\n" not in str(err.value)
