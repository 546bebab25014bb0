"""Weight files: only tensors and plain containers load; every other file is one line, and
nothing in a file is ever executed (payloads below would leave a marker file if they ran)."""

import os
import pickle

import pytest
import torch

from debiaslab.checkpoints import load_module_weights, load_weights_file, state_dict_problem
from debiaslab.errors import DebiaslabError
from debiaslab.gan import load_generator
from debiaslab.models import build_model
from debiaslab.oracle import load_oracle
from debiaslab.params import TrainParams
from debiaslab.train import load_checkpoint

CPU = torch.device("cpu")
REFUSED = "refused: the file contains pickled Python objects that are not plain tensors/containers"


class OpenPayload:
    """Unpickling calls open(marker, 'w'): a global that weights-only loading does not allow."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


class SystemPayload(OpenPayload):
    """Unpickling runs a shell command: a module weights-only loading blocks outright."""

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class PlainObject:
    """No __reduce__: pickled by class name, which weights-only loading refuses as well."""


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text, text
    return text


def payload_files(tmp_path):
    marker = tmp_path / "EXECUTED"
    files = {}
    for name, obj in (("open", {"x": OpenPayload(marker)}), ("system", {"x": SystemPayload(marker)}),
                      ("plain_object", {"x": PlainObject()})):
        files[name] = tmp_path / f"{name}.pt"
        torch.save(obj, files[name])
    files["raw_pickle"] = tmp_path / "raw.pkl"  # not torch.save at all: a bare pickle stream
    files["raw_pickle"].write_bytes(pickle.dumps({"x": OpenPayload(marker)}, protocol=4))
    return marker, files


@pytest.mark.parametrize("kind", ["open", "system", "plain_object", "raw_pickle"])
def test_pickled_objects_are_refused_in_one_line(tmp_path, kind):
    marker, files = payload_files(tmp_path)
    with pytest.raises(DebiaslabError) as err:
        load_weights_file(files[kind])
    text = one_line(err)
    assert text.startswith(f"{files[kind]}: {REFUSED}")
    assert "never load it with weights_only=False" in text and "Weights only load failed" not in text
    assert not marker.exists()


LOADERS = {
    "classifier": lambda p: load_checkpoint(p, CPU),
    "generator": lambda p: load_generator(p, CPU),
    "oracle": lambda p: load_oracle(str(p), CPU),
    "resnet_weights": lambda p: build_model(1, TrainParams(arch="resnet18", weights=str(p))),
}


@pytest.mark.parametrize("loader", LOADERS)
def test_every_loader_refuses_pickled_objects(tmp_path, loader):
    marker, files = payload_files(tmp_path)
    with pytest.raises(DebiaslabError) as err:
        LOADERS[loader](files["system"])
    assert REFUSED in one_line(err)
    assert not marker.exists()


@pytest.mark.parametrize("content, reason", [
    (b"", "the file ends early"),
    (b"garbage", "not a PyTorch weights file, or a damaged one: Unsupported operand"),
    (None, "failed reading zip archive"),  # a torch.save archive cut in half
])
def test_damaged_files_are_one_line(tmp_path, content, reason):
    path = tmp_path / "bad.pt"
    if content is None:
        torch.save({"w": torch.zeros(1000)}, path)
        content = path.read_bytes()[:2000]
    path.write_bytes(content)
    with pytest.raises(DebiaslabError) as err:
        load_weights_file(path, what="GAN checkpoint")
    text = one_line(err)
    assert text.startswith(f"{path}: not a readable GAN checkpoint (") and reason in text


def test_plain_weights_load_and_a_label_replaces_the_path(tmp_path):
    torch.save({"w": torch.ones(2), "meta": {"n": [1, 2]}}, tmp_path / "ok.pt")
    assert load_weights_file(tmp_path / "ok.pt")["meta"] == {"n": [1, 2]}
    with pytest.raises(DebiaslabError, match=r"^train\.weights: x\.pt: state dict not found$"):
        load_weights_file(tmp_path / "none.pt", what="state dict", label="train.weights: x.pt")


def test_state_dict_problem_names_the_first_difference():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    good = model.state_dict()
    assert state_dict_problem(model, good) is None
    assert state_dict_problem(model, [1, 2]) == "the weights are a list, not a dict of tensors"
    assert state_dict_problem(model, {**good, "extra": torch.zeros(1)}) == "unexpected: extra"
    partial = {k: v for k, v in good.items() if k != "1.bias"}
    assert state_dict_problem(model, partial) == "missing: 1.bias"
    assert state_dict_problem(model, {**good, "0.weight": torch.zeros(8, 3)}) == (
        "first mismatch: 0.weight has shape [8,3], the model expects [4,3]")
    assert state_dict_problem(model, {**good, "0.bias": 1.5}) == "0.bias is a float, not a tensor"
    assert state_dict_problem(model, {**good, "fc.x": 1}, ignore=("fc.",)) is None


def test_load_module_weights_leaves_the_model_alone_when_they_do_not_fit():
    model = torch.nn.Linear(3, 4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(DebiaslabError, match=r"^m\.pt: weights do not fit the model \(first mismatch: "
                                             r"weight has shape \[4,2\], the model expects \[4,3\]\)$"):
        load_module_weights(model, {"weight": torch.zeros(4, 2), "bias": torch.ones(4)}, "m.pt")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_oracle_marker_checkpoint_and_errors(tmp_path):
    from debiaslab.io import save_torch
    from debiaslab.train import make_method, save_checkpoint

    save_torch(tmp_path / "off.pt", {"enabled": False})
    assert load_oracle(str(tmp_path / "off.pt"), CPU) is None
    params = TrainParams(epochs=1, width=8)
    save_checkpoint(tmp_path / "on.pt", make_method("erm", 2, params, CPU), params, num_outputs=2,
                    attributes=["Smiling", "Eyeglasses"])
    method, meta = load_oracle(str(tmp_path / "on.pt"), CPU)
    assert meta["attributes"] == ["Smiling", "Eyeglasses"] and method.model.head.out_features == 2
    with pytest.raises(DebiaslabError, match=r"none\.pt: not found \(run the oracle stage\)$"):
        load_oracle(str(tmp_path / "none.pt"), CPU)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(DebiaslabError, match=r"list\.pt: not a classifier checkpoint written by a training "
                                             r"stage \(it holds a list, not a dict\)$"):
        load_oracle(str(tmp_path / "list.pt"), CPU)
