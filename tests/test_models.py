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


def test_resnet_weights_of_the_wrong_shape_or_kind_are_one_line(tmp_path):
    import torchvision

    state = torchvision.models.resnet18(weights=None).state_dict()
    state["conv1.weight"] = torch.zeros(32, 3, 7, 7)
    torch.save(state, tmp_path / "narrow.pt")
    with pytest.raises(DebiaslabError) as err:
        build_model(1, TrainParams(arch="resnet18", weights=str(tmp_path / "narrow.pt")))
    assert str(err.value) == (f"train.weights: {tmp_path / 'narrow.pt'}: does not match resnet18 (first "
                              "mismatch: conv1.weight has shape [32,3,7,7], the model expects [64,3,7,7])")
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), tmp_path / "r50.pt")
    with pytest.raises(DebiaslabError, match=r"r50\.pt: does not match resnet18 \(unexpected: "
                                             r"layer1\.0\.conv3\.weight, "):
        build_model(1, TrainParams(arch="resnet18", weights=str(tmp_path / "r50.pt")))
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(DebiaslabError, match=r"list\.pt: does not match resnet18 \(the weights are a list, "
                                             r"not a dict of tensors\)$"):
        build_model(1, TrainParams(arch="resnet18", weights=str(tmp_path / "list.pt")))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(DebiaslabError, match=r"^train\.weights: .*junk\.pt: not a readable state dict \("):
        build_model(1, TrainParams(arch="resnet18", weights=str(tmp_path / "junk.pt")))
