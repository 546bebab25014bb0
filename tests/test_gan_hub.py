"""The torch.hub PGAN adapter, against a local imitation of the hub repo (tests/fixtures/pgan_hub).

No test touches the network: the hub is loaded with source="local", or torch.hub.load is replaced.
"""

import shutil
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from debiaslab.errors import DebiaslabError
from debiaslab.gan_hub import PGAN_HUB_REPO, HubGenerator, load_hub_generator

FIXTURE = Path(__file__).parent / "fixtures" / "pgan_hub"
LATENT_DIM = 24  # the fixture's LATENT_DIM
HUB_SIZE = 64  # the fixture's OUTPUT_SIZE
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def hub_home(tmp_path, monkeypatch):
    """Keep torch.hub's cache (and anything else under TORCH_HOME) out of the home directory."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    assert torch.hub.get_dir().startswith(str(tmp_path))


def load(repo=FIXTURE, image_size=32, **kwargs) -> HubGenerator:
    return load_hub_generator(repo=str(repo), source="local", image_size=image_size, device=CPU, **kwargs)


def hub_model(repo=FIXTURE):
    return torch.hub.load(str(repo), "PGAN", source="local", model_name="celeba", pretrained=True,
                          useGPU=False)


def latents(n=4, seed=0):
    return torch.randn(n, LATENT_DIM, generator=torch.Generator().manual_seed(seed))


def variant(tmp_path, old: str, new: str) -> Path:
    """A tmp copy of the fixture repo with one line of its hubconf.py changed."""
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURE, repo, ignore=shutil.ignore_patterns("__pycache__"))
    hubconf = repo / "hubconf.py"
    text = hubconf.read_text()
    assert old in text
    hubconf.write_text(text.replace(old, new))
    return repo


def custom(tmp_path, body: str) -> Path:
    repo = tmp_path / "custom"
    repo.mkdir()
    header = "import torch\nfrom torch import nn\n\ndependencies = ['torch']\n\n"
    (repo / "hubconf.py").write_text(header + body)
    return repo


def test_output_shape_range_and_frozen():
    gen = load()
    assert gen.latent_dim == LATENT_DIM and gen.hub_size == HUB_SIZE
    with torch.no_grad():
        x = gen(latents(5))
    assert x.shape == (5, 3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.1
    assert not gen.training and not any(p.requires_grad for p in gen.parameters())
    gen.train()
    assert not gen.training and not gen.net.training


def test_uses_the_averaged_generator_like_test_getavg():
    gen = load(image_size=HUB_SIZE)  # no resizing: exactly the hub's images, clamped
    model, z = hub_model(), latents()
    with torch.no_grad():
        x = gen(z)
    assert torch.allclose(x, model.test(z, getAvG=True).clamp(-1, 1))
    assert not torch.allclose(x, model.test(z).clamp(-1, 1))


def test_two_loads_are_identical():
    z = latents()
    with torch.no_grad():
        assert torch.equal(load()(z), load()(z))


def test_gradients_flow_to_z():
    gen = load()
    z = latents().requires_grad_(True)
    gen(z).square().mean().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    assert all(p.grad is None for p in gen.parameters())


@pytest.mark.parametrize("hub_size", [16, 64])
def test_resizes_to_image_size(tmp_path, hub_size):
    repo = variant(tmp_path, "OUTPUT_SIZE = 64", f"OUTPUT_SIZE = {hub_size}")
    gen, z = load(repo), latents()
    with torch.no_grad():
        x = gen(z)
        raw = hub_model(repo).test(z, getAvG=True)
    assert gen.hub_size == hub_size and raw.shape[-1] == hub_size
    assert x.shape == (4, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    expected = F.interpolate(raw, size=(32, 32), mode="bilinear", antialias=True).clamp(-1, 1)
    assert torch.allclose(x, expected, atol=1e-6)


def test_unwraps_data_parallel(tmp_path):
    gen = load(variant(tmp_path, "DATA_PARALLEL = False", "DATA_PARALLEL = True"))
    assert not isinstance(gen.net, torch.nn.DataParallel)
    assert gen(latents()).shape == (4, 3, 32, 32)


def test_rejects_wrong_latent_shape():
    with pytest.raises(ValueError, match=r"\(n, 24\)"):
        load()(torch.zeros(2, LATENT_DIM + 1))


def expect_error(match: str, **kwargs) -> str:
    with pytest.raises(DebiaslabError, match=match) as info:
        load(**kwargs)
    message = str(info.value)
    assert "\n" not in message and message.startswith("gan.source=hub: ")
    return message


def test_missing_directory(tmp_path):
    message = expect_error("could not load", repo=tmp_path / "nowhere")
    assert "FileNotFoundError" in message and "gan.source=train" in message


def test_hubconf_without_pgan(tmp_path):
    expect_error("could not load .* PGAN celeba .*Cannot find callable PGAN",
                 repo=variant(tmp_path, "def PGAN(", "def NotPGAN("))


def test_unknown_model_name():
    expect_error("could not load .*ValueError: model_name should be in", model_name="celebA-1024")


def test_wrong_channel_count(tmp_path):
    expect_error(r"unexpected interface: expected .*\(2, 3, S, S\).* got \(2, 1, 64, 64\)",
                 repo=variant(tmp_path, "CHANNELS = 3", "CHANNELS = 1"))


def test_entry_point_raising_at_import(tmp_path):
    expect_error("could not load .*ModuleNotFoundError", repo=custom(tmp_path, "import no_such_package\n"))


@pytest.mark.parametrize(("body", "match"), [
    ("def PGAN(**kwargs):\n    return object()\n", "no generator network"),
    ("class C:\n    noiseVectorDim = 8\n    latentVectorDim = 10\n\n"
     "class M:\n    config = C()\n    avgG = nn.Linear(10, 12)\n\n"
     "def PGAN(**kwargs):\n    return M()\n", "class-conditional"),
    ("class C:\n    noiseVectorDim = 8\n\n"
     "class M:\n    config = C()\n    netG = nn.Linear(8, 12)\n\n"
     "def PGAN(**kwargs):\n    return M()\n", r"expected .*\(2, 3, S, S\).* got \(2, 12\)"),
    ("class C:\n    noiseVectorDim = 9\n\n"
     "class M:\n    config = C()\n    netG = nn.Linear(8, 12)\n\n"
     "def PGAN(**kwargs):\n    return M()\n", r"rejects a \(2, 9\) latent"),
    ("class M:\n    netG = nn.Linear(8, 12)\n\n"
     "def PGAN(**kwargs):\n    return M()\n", "config.noiseVectorDim is None"),
])
def test_unexpected_interface(tmp_path, body, match):
    expect_error("unexpected interface: .*" + match, repo=custom(tmp_path, body))


def test_default_call_is_the_public_celeba_pgan(monkeypatch):
    """Without network: the arguments the real torch.hub.load would receive."""
    model, calls = hub_model(), []

    def fake_load(*args, **kwargs):
        calls.append((args, kwargs))
        return model

    monkeypatch.setattr(torch.hub, "load", fake_load)
    gen = load_hub_generator(image_size=32, device=CPU)
    assert PGAN_HUB_REPO == "facebookresearch/pytorch_GAN_zoo:hub"
    (args, kwargs), = calls
    assert args == (PGAN_HUB_REPO, "PGAN")
    assert kwargs["model_name"] == "celeba" and kwargs["pretrained"] is True
    assert kwargs["useGPU"] is False and kwargs["source"] == "github" and kwargs["trust_repo"] is True
    assert gen.latent_dim == LATENT_DIM


def test_offline_is_a_one_line_error(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure\nin name resolution")

    monkeypatch.setattr(torch.hub, "load", offline)
    with pytest.raises(DebiaslabError) as info:
        load_hub_generator(image_size=32, device=CPU)
    assert str(info.value) == (
        "gan.source=hub: could not load facebookresearch/pytorch_GAN_zoo:hub PGAN celeba (URLError: "
        "<urlopen error [Errno -3] Temporary failure in name resolution>); "
        "without internet use gan.source=train or gan.source=checkpoint")
