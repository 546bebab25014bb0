import pytest
import torch

from debiaslab.errors import DebiaslabError
from debiaslab.models import ARCHITECTURES, build_model
from debiaslab.params import TrainParams


def test_registry_and_output_shapes():
    assert {"small_cnn", "resnet18", "resnet50"} <= set(ARCHITECTURES)
    x = torch.zeros(2, 3, 32, 32)
    assert build_model(3, TrainParams(width=8))(x).shape == (2, 3)
    resnet = build_model(1, TrainParams(arch="resnet18")).eval()
    assert resnet(x).shape == (2, 1) and resnet.embed(x).shape == (2, 512)


def test_unknown_architecture():
    with pytest.raises(DebiaslabError, match=r"unknown architecture 'vgg' \(valid: small_cnn"):
        build_model(1, TrainParams(arch="vgg"))


def test_resnet_loads_local_weights(tmp_path):
    import torchvision

    torch.manual_seed(0)
    donor = torchvision.models.resnet18(weights=None)
    torch.save(donor.state_dict(), tmp_path / "r18.pt")
    net = build_model(1, TrainParams(arch="resnet18", weights=str(tmp_path / "r18.pt")))
    assert torch.equal(net.trunk.conv1.weight, donor.conv1.weight)
    assert isinstance(net.head, torch.nn.Sequential)  # the paper's head, freshly initialised


def test_resnet_weights_errors(tmp_path):
    with pytest.raises(DebiaslabError, match="file not found"):
        build_model(1, TrainParams(arch="resnet18", weights=str(tmp_path / "none.pt")))
    torch.save(build_model(1, TrainParams()).state_dict(), tmp_path / "cnn.pt")
    with pytest.raises(DebiaslabError, match="does not match resnet18"):
        build_model(1, TrainParams(arch="resnet18", weights=str(tmp_path / "cnn.pt")))
