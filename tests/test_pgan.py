"""The native pytorch_GAN_zoo PGAN generator and its safe loader of the release checkpoints.

The key test compares against /work/shared/fixtures/pgan_zoo: a checkpoint written by the repository's own
code (legacy torch.save format, config pickled as models.utils.config.BaseConfig) and what the repository's
``model.test(z, getAvG=...)`` returned for fixed latents. Malformed and malicious variants are built in
tmp_path; the malicious ones call harmless functions whose effect would be visible (print, mkdir).
"""

import argparse
import math
import os
import pickle
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from debiaslab.errors import DebiaslabError
from debiaslab.pgan import (
    CONFIG_GLOBAL,
    PGANGenerator,
    first_foreign_global,
    load_pgan_checkpoint,
    load_pgan_generator,
    pgan_options,
)

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "pgan_zoo"
CHECKPOINT = FIXTURE / "checkpoint.pth"
needs_fixture = pytest.mark.skipif(not (CHECKPOINT.is_file() and (FIXTURE / "expected.pt").is_file()),
                                   reason=f"the pytorch_GAN_zoo fixture is not at {FIXTURE}")


# --- helpers --------------------------------------------------------------------------------------


class CallOnLoad:
    """Pickles as the call ``func(*args)``: what a malicious checkpoint carries."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.fixture
def release_record(monkeypatch):
    """A class importable as models.utils.config.BaseConfig, so that torch.save pickles a config as the
    repository does; returns a function making such a record from a dict."""
    module = types.ModuleType("models.utils.config")

    class BaseConfig:
        pass

    BaseConfig.__module__, BaseConfig.__qualname__ = "models.utils.config", "BaseConfig"
    module.BaseConfig = BaseConfig
    monkeypatch.setitem(sys.modules, "models", types.ModuleType("models"))
    monkeypatch.setitem(sys.modules, "models.utils", types.ModuleType("models.utils"))
    monkeypatch.setitem(sys.modules, "models.utils.config", module)

    def make(attributes: dict):
        record = BaseConfig()
        vars(record).update(attributes)
        return record

    return make


def fixture_content(make_record) -> dict:
    """The fixture checkpoint's content, ready to be changed and saved again."""
    config, states = load_pgan_checkpoint(CHECKPOINT)
    return {"config": make_record(config), **{k: dict(v) for k, v in states.items()}}


def save_legacy(path: Path, content) -> Path:
    """torch.save in the legacy (non-zip) format of the 2019 releases."""
    torch.save(content, path, _use_new_zipfile_serialization=False)
    return path


def refusal(path) -> str:
    """The message load_pgan_checkpoint refuses ``path`` with, checked to be one clean line."""
    with pytest.raises(DebiaslabError) as info:
        load_pgan_checkpoint(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert "\n" not in message and "Traceback" not in message, message
    return message


def small_config(**changes) -> dict:
    config = {"depthScale0": 8, "depthOtherScales": [8, 4, 4], "latentVectorDim": 6, "noiseVectorDim": 6,
              "dimOutput": 3, "equalizedlR": True, "initBiasToZero": True, "alpha": 0.0,
              "leakyReluLeak": 0.2, "perChannelNormalization": True, "lossCriterion": "WGANGP"}
    return {**config, **changes}


# --- the key test: the repository's own outputs -----------------------------------------------------


@needs_fixture
@pytest.mark.parametrize("which", ["avgG", "netG"])
def test_reproduces_the_repository_outputs(which):
    expected = torch.load(FIXTURE / "expected.pt", map_location="cpu", weights_only=True)
    generator = load_pgan_generator(CHECKPOINT, which=which)
    assert (generator.latent_dim, generator.image_size) == (32, 128)
    with torch.no_grad():
        images = generator(expected["z"])
    assert images.shape == (4, 3, 128, 128)
    torch.testing.assert_close(images, expected[f"{which}_out"], atol=1e-5, rtol=1e-5)


@needs_fixture
def test_avg_and_trained_generators_differ():
    z = torch.randn(2, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert not torch.allclose(load_pgan_generator(CHECKPOINT)(z),
                                  load_pgan_generator(CHECKPOINT, which="netG")(z))


@needs_fixture
def test_checkpoint_contents_and_strict_keys():
    config, states = load_pgan_checkpoint(CHECKPOINT)
    assert isinstance(config, dict)
    assert config["depthOtherScales"] == [16, 16, 16, 8, 8] and config["lossCriterion"] == "WGANGP"
    assert set(states) == {"avgG", "netG"}
    # the native module's keys are the release's, in the release's order
    assert list(PGANGenerator(config).state_dict()) == list(states["avgG"])
    assert first_foreign_global(CHECKPOINT) is None  # only tensors, containers and the config record


@needs_fixture
def test_frozen_but_differentiable_in_z():
    generator = load_pgan_generator(CHECKPOINT)
    assert not generator.training
    assert all(not p.requires_grad for p in generator.parameters())
    z = torch.randn(2, 32, generator=torch.Generator().manual_seed(1), requires_grad=True)
    generator(z).square().mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert all(p.grad is None for p in generator.parameters())


# --- the architecture beyond the fixture (alpha blending, tanh, no equalisation) ---------------------


def reference_forward(generator: PGANGenerator, config: dict, z: torch.Tensor) -> torch.Tensor:
    """GNet's forward written out step by step with functional ops, from the repository's description."""
    weights = generator.state_dict()
    leak, alpha, n_scales = config["leakyReluLeak"], config["alpha"], len(config["depthOtherScales"])

    def layer(name, x, op, **kw):
        w, b = weights[f"{name}.module.weight"], weights[f"{name}.module.bias"]
        he = math.sqrt(2.0 / w[0].numel()) if config["equalizedlR"] else 1.0
        return op(x, w, b, **kw) * he  # the bias is scaled too

    def norm(x):
        return x / torch.sqrt((x * x).mean(dim=1, keepdim=True) + 1e-8)

    def conv_block(name, x):
        return norm(F.leaky_relu(layer(name, x, F.conv2d, padding=1), leak))

    x = F.leaky_relu(layer("formatLayer", norm(z), F.linear), leak)
    x = conv_block("groupScale0.0", norm(x.reshape(len(z), config["depthScale0"], 4, 4)))
    features = [x]
    for i in range(n_scales):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = conv_block(f"scaleLayers.{i}.1", conv_block(f"scaleLayers.{i}.0", x))
        features.append(x)
    image = layer(f"toRGBLayers.{n_scales}", features[-1], F.conv2d)
    if alpha > 0 and n_scales:
        lower = layer(f"toRGBLayers.{n_scales - 1}", features[-2], F.conv2d)
        image = alpha * F.interpolate(lower, scale_factor=2, mode="nearest") + (1 - alpha) * image
    return torch.tanh(image) if config["lossCriterion"] in ("MSE", "DCGAN") else image


@pytest.mark.parametrize("changes", [
    {"alpha": 0.3, "lossCriterion": "DCGAN", "leakyReluLeak": 0.1},
    {"alpha": 0.6, "depthOtherScales": [4]},  # blending from scale 0 (GNet's special case)
    {"equalizedlR": False, "initBiasToZero": False, "lossCriterion": "MSE"},
    {"alpha": 0.5, "depthOtherScales": []},  # no added scale: the repository never sets alpha
])
def test_matches_a_step_by_step_reference(changes):
    torch.manual_seed(0)
    config = small_config(**changes)
    # float64: with a few channels, pixel norm of near-zero features amplifies float32 rounding to ~1e-4
    generator = PGANGenerator(config).double()
    with torch.no_grad():
        for name, value in generator.state_dict().items():
            if name.endswith("bias"):
                value.normal_()  # non-zero biases, to check they are scaled with the weights
    z = torch.randn(3, 6, dtype=torch.float64)
    assert generator.image_size == 4 * 2 ** len(config["depthOtherScales"])
    with torch.no_grad():
        images = generator(z)
        torch.testing.assert_close(images, reference_forward(generator, config, z), atol=1e-9, rtol=1e-9)


def test_rejects_latents_of_the_wrong_shape():
    generator = PGANGenerator(small_config())
    with pytest.raises(ValueError, match=r"\(n, 6\)"):
        generator(torch.zeros(2, 7))


# --- refusing pickled code -----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])  # GLOBAL, and STACK_GLOBAL
def test_refuses_a_pickled_function_without_calling_it(tmp_path, capfd, protocol):
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"config": CallOnLoad(print, "PAYLOAD-RAN")}, protocol=protocol))
    message = refusal(path)
    assert "refused" in message and "builtins.print" in message
    assert "PAYLOAD-RAN" not in capfd.readouterr().out


@needs_fixture
def test_refuses_code_hidden_in_a_release_like_file(tmp_path, release_record):
    marker = tmp_path / "payload-ran"
    content = fixture_content(release_record)
    content["netD"] = CallOnLoad(os.mkdir, str(marker))
    path = save_legacy(tmp_path / "evil.pth", content)
    message = refusal(path)
    assert f"{os.mkdir.__module__}.mkdir" in message  # posix.mkdir on Linux
    assert not marker.exists()


@needs_fixture
def test_refuses_a_foreign_config_class(tmp_path, release_record):
    content = fixture_content(release_record)
    content["config"] = argparse.Namespace(**vars(content["config"]))
    torch.save(content, tmp_path / "zip.pth")  # the current zip format
    assert "argparse.Namespace" in refusal(tmp_path / "zip.pth")


# --- malformed files -----------------------------------------------------------------------------------


@needs_fixture
def test_a_release_like_file_round_trips(tmp_path, release_record):
    path = save_legacy(tmp_path / "copy.pth", fixture_content(release_record))
    config, states = load_pgan_checkpoint(path)
    assert config == load_pgan_checkpoint(CHECKPOINT)[0]
    torch.testing.assert_close(states["avgG"], load_pgan_checkpoint(CHECKPOINT)[1]["avgG"])


@needs_fixture
@pytest.mark.parametrize("keep", [100, -1])  # inside the pickles, inside the tensor data
def test_truncated_file(tmp_path, keep):
    path = tmp_path / "cut.pth"
    path.write_bytes(CHECKPOINT.read_bytes()[:keep])
    assert "not a readable PGAN checkpoint" in refusal(path)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.pth").write_text("hello world")
    assert "not a readable PGAN checkpoint (not a torch.save file" in refusal(tmp_path / "notes.pth")


def test_missing_file(tmp_path):
    assert "not found" in refusal(tmp_path / "nothing.pth")


def test_not_a_dict(tmp_path):
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    assert "holds a list, expected a dict with keys config, avgG, netG" in refusal(tmp_path / "list.pth")


@needs_fixture
@pytest.mark.parametrize("key", ["config", "avgG", "netG"])
def test_missing_key(tmp_path, release_record, key):
    content = fixture_content(release_record)
    del content[key]
    assert f"no {key}" in refusal(save_legacy(tmp_path / "partial.pth", content))


@needs_fixture
@pytest.mark.parametrize(("field", "value", "expected"), [
    ("depthScale0", "16", "config.depthScale0 is '16' (str), expected a positive int"),
    ("depthOtherScales", [16, 16, "16", 8, 8], "expected a list of positive ints"),
    ("equalizedlR", 1, "config.equalizedlR is 1 (int), expected True or False"),
    ("alpha", 1.5, "expected a number in [0, 1]"),
    ("lossCriterion", "Hinge", "config.lossCriterion is 'Hinge'"),
    ("perChannelNormalization", False, "only runs with pixel normalisation"),
    ("latentVectorDim", None, "config.latentVectorDim is None"),
])
def test_config_field_of_the_wrong_type(tmp_path, release_record, field, value, expected):
    content = fixture_content(release_record)
    setattr(content["config"], field, value)
    assert expected in refusal(save_legacy(tmp_path / "config.pth", content))


@needs_fixture
def test_config_that_is_not_a_record(tmp_path, release_record):
    content = fixture_content(release_record)
    content["config"] = [1, 2]
    message = refusal(save_legacy(tmp_path / "c.pth", content))
    assert f"config is a list, expected the release's {CONFIG_GLOBAL} record" in message


@needs_fixture
def test_weights_that_do_not_fit_the_config(tmp_path, release_record):
    content = fixture_content(release_record)
    content["config"].depthOtherScales = [16, 16, 16, 8, 16]
    message = refusal(save_legacy(tmp_path / "shapes.pth", content))
    assert "avgG does not fit the generator its config describes" in message
    assert "scaleLayers.4.0.module.weight has shape [8,8,3,3], the model expects [16,8,3,3]" in message


@needs_fixture
def test_missing_and_unexpected_weights(tmp_path, release_record):
    content = fixture_content(release_record)
    content["netG"]["extra.weight"] = content["netG"].pop("formatLayer.module.bias")
    message = refusal(save_legacy(tmp_path / "keys.pth", content))
    assert "netG does not fit" in message
    assert "missing: formatLayer.module.bias; unexpected: extra.weight" in message


@needs_fixture
def test_non_finite_weights(tmp_path, release_record):
    content = fixture_content(release_record)
    content["avgG"]["toRGBLayers.5.module.bias"] = torch.full((3,), float("nan"))
    message = refusal(save_legacy(tmp_path / "nan.pth", content))
    assert "toRGBLayers.5.module.bias has non-finite values" in message


@needs_fixture
def test_generator_choice_and_conditional_models(tmp_path, release_record):
    with pytest.raises(DebiaslabError, match="which='netD', expected one of avgG, netG"):
        load_pgan_generator(CHECKPOINT, which="netD")
    content = fixture_content(release_record)
    content["config"].noiseVectorDim = 30  # 30 noise + 2 class dims
    with pytest.raises(DebiaslabError, match="class-conditional"):
        load_pgan_generator(save_legacy(tmp_path / "ac.pth", content))


def test_options_fall_back_to_the_repository_defaults():
    config = small_config()
    for key in ("leakyReluLeak", "perChannelNormalization", "lossCriterion"):
        del config[key]
    options = pgan_options(config)
    assert (options.leaky_relu_leak, options.output_activation) == (0.2, None)
    with pytest.raises(DebiaslabError, match="config lacks depthScale0"):
        pgan_options({k: v for k, v in config.items() if k != "depthScale0"})


@needs_fixture
def test_download_release_checks_the_hash_its_name_carries(tmp_path):
    import hashlib
    import shutil

    from debiaslab.pgan import download_release

    digest = hashlib.sha256(CHECKPOINT.read_bytes()).hexdigest()
    good = tmp_path / "server" / f"celeba-{digest[:8]}.pth"
    bad = tmp_path / "server" / "celeba-00000000.pth"
    good.parent.mkdir()
    for path in (good, bad):
        shutil.copy(CHECKPOINT, path)
    dest = tmp_path / "models/pgan/release.pth"
    assert download_release(dest, url=good.as_uri(), progress=False) == dest
    assert dest.read_bytes() == CHECKPOINT.read_bytes()
    other = tmp_path / "models/pgan/other.pth"
    with pytest.raises(DebiaslabError, match=r"could not download to .*other\.pth \(.*hash"):
        download_release(other, url=bad.as_uri(), progress=False)
    assert sorted(p.name for p in other.parent.iterdir()) == ["release.pth"]  # nothing half-written
