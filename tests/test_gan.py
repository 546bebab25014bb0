"""The DCGAN: shapes, a short training run, EMA, inversion, checkpoint round trip."""

import types

import numpy as np
import pytest
import torch

from debiaslab.errors import DebiaslabError
from debiaslab.gan import (
    Discriminator,
    Generator,
    check_latent_dim,
    generate,
    generator_config,
    image_grid,
    invert,
    load_generator,
    sample_latents,
    train_gan,
    update_ema,
)
from debiaslab.io import save_torch


def params(**kw):
    base = dict(latent_dim=8, g_width=4, d_width=4, epochs=2, batch_size=16, lr_g=2e-4, lr_d=2e-4,
                ema_decay=0.99, hflip=True, precision="bf16")
    return types.SimpleNamespace(**{**base, **kw})


@pytest.mark.parametrize("size", [8, 16, 32])
def test_shapes_and_range(size):
    G, D = Generator(8, 4, size), Discriminator(4, size)
    x = G(torch.randn(5, 8))
    assert x.shape == (5, 3, size, size) and x.abs().max() <= 1
    assert D(x).shape == (5,)


def test_image_size_must_be_power_of_two():
    with pytest.raises(DebiaslabError, match="not a power of two"):
        Generator(8, 4, 24)


def test_latents_are_seeded():
    a, b = sample_latents(10, 4, seed=1), sample_latents(10, 4, seed=1)
    assert a.dtype == np.float32 and np.array_equal(a, b)
    assert not np.array_equal(a, sample_latents(10, 4, seed=2))


def test_training_runs_reproducibly_and_calls_back():
    images = np.random.default_rng(0).integers(0, 256, (64, 8, 8, 3), dtype=np.uint8)
    logs = []

    def run():
        torch.manual_seed(0)
        return train_gan(images, params(), device=torch.device("cpu"),
                         generator=torch.Generator().manual_seed(0),
                         on_epoch=lambda e, log, ema: logs.append((e, log)), progress=False)

    G1, G2 = run(), run()
    assert [e for e, _ in logs] == [1, 2, 1, 2]
    assert all(np.isfinite(v) for _, log in logs for v in log.values())
    for a, b in zip(G1.state_dict().values(), G2.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_ema_warms_up_then_averages():
    model, ema = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    torch.nn.init.zeros_(ema.weight)
    torch.nn.init.ones_(model.weight)
    update_ema(ema, model, 0.999, step=0)  # decay 1/10 at step 0: mostly the live weights
    assert torch.allclose(ema.weight, torch.full_like(ema.weight, 0.9))


def test_generate_streams_uint8_batches():
    G = Generator(8, 4, 8)
    batches = list(generate(G, sample_latents(10, 8, 0), device=torch.device("cpu"), batch_size=4))
    assert [len(b) for b in batches] == [4, 4, 2] and batches[0].dtype == np.uint8
    assert batches[0].shape[1:] == (8, 8, 3)


def test_checkpoint_round_trip_and_errors(tmp_path):
    G = Generator(8, 4, 8).eval()
    save_torch(tmp_path / "g.pt", {"source": "train", "config": generator_config(G),
                                   "state_dict": G.state_dict()})
    H = load_generator(tmp_path / "g.pt", torch.device("cpu"))
    z = torch.randn(3, 8)
    assert torch.allclose(G(z), H(z), atol=1e-5)  # H is channels_last: summation order differs
    check_latent_dim(H, 8, "x")
    with pytest.raises(DebiaslabError, match="latent size mismatch"):
        check_latent_dim(H, 9, "x")
    with pytest.raises(DebiaslabError, match="g.pt: latent size mismatch"):
        load_generator(tmp_path / "g.pt", torch.device("cpu"), latent_dim=9)
    with pytest.raises(DebiaslabError, match="no GAN checkpoint"):
        load_generator(tmp_path / "missing.pt", torch.device("cpu"))


def test_inversion_reduces_reconstruction_error():
    torch.manual_seed(0)
    G = Generator(8, 4, 8).eval()
    target = next(generate(G, sample_latents(6, 8, 5), device=torch.device("cpu")))
    kw = dict(lr=0.05, prior_weight=0.0, seed=0, device=torch.device("cpu"), precision="fp32",
              progress=False)
    _, before = invert(G, target, steps=1, **kw)
    z, after = invert(G, target, steps=80, **kw)
    assert z.shape == (6, 8) and after.mean() < 0.5 * before.mean()


def test_image_grid_layout():
    grid = image_grid(np.zeros((5, 4, 4, 3), np.uint8), columns=3)
    assert grid.shape == (2 * 5 + 1, 3 * 5 + 1, 3)


def test_diverging_gan_stops_with_one_line():
    images = np.random.default_rng(0).integers(0, 256, (64, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(DebiaslabError) as err:
        train_gan(images, params(lr_d=float("inf")), device=torch.device("cpu"),
                  generator=torch.Generator().manual_seed(0), progress=False)
    assert str(err.value).startswith("gan training diverged: d_loss is nan in epoch 1 (lower the "
                                     "learning rates, gan.lr_g = 0.0002, gan.lr_d = inf)")


def test_wrong_checkpoints_are_one_line(tmp_path):
    cpu = torch.device("cpu")
    save_torch(tmp_path / "model.pt", {"state_dict": {}, "method": "erm", "train": {}, "meta": {}})
    with pytest.raises(DebiaslabError) as err:
        load_generator(tmp_path / "model.pt", cpu)
    assert str(err.value) == (f"{tmp_path / 'model.pt'}: not a GAN checkpoint of this project (missing "
                              "keys: config; it looks like a classifier checkpoint)")
    save_torch(tmp_path / "list.pt", [1, 2])
    with pytest.raises(DebiaslabError, match=r"list\.pt: not a GAN checkpoint of this project \(it holds "
                                             r"a list, not a dict\)$"):
        load_generator(tmp_path / "list.pt", cpu)
    G = Generator(8, 4, 8)
    wide = {"source": "train", "config": {**generator_config(G), "width": 8}, "state_dict": G.state_dict()}
    save_torch(tmp_path / "wide.pt", wide)
    with pytest.raises(DebiaslabError) as err:
        load_generator(tmp_path / "wide.pt", cpu)
    assert str(err.value) == (f"{tmp_path / 'wide.pt'}: weights do not fit the model (first mismatch: "
                              "base.0.weight has shape [512,8], the model expects [1024,8])")
    for config in ({"latent_dim": "8", "width": 4, "image_size": 8}, {"latent_dim": 8, "size": 8}):
        save_torch(tmp_path / "cfg.pt", {**wide, "config": config})
        expected = r"cfg\.pt: not a GAN checkpoint of this project \(config .* is not positive integers"
        with pytest.raises(DebiaslabError, match=expected + r" latent_dim, width, image_size\)$"):
            load_generator(tmp_path / "cfg.pt", cpu)
    save_torch(tmp_path / "odd.pt", {**wide, "config": {**generator_config(G), "image_size": 24}})
    with pytest.raises(DebiaslabError, match=r"odd\.pt: gan: image size 24 is not a power of two"):
        load_generator(tmp_path / "odd.pt", cpu)
