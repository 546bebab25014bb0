"""Architecture registry: name -> builder(num_outputs, params) returning an ``nn.Module``.

Every model exposes ``embed(x)`` (the pooled representation) and ``head`` (the classifier on it),
so methods that work on the representation, such as adversarial removal, fit every architecture.
``small_cnn`` trains in about a minute at 32 px on two CPU cores; the ResNets are torchvision's,
randomly initialised or loaded from a local state-dict file (``train.weights``), never downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .checkpoints import load_module_weights, load_weights_file
from .errors import DebiaslabError

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    def add(builder):
        ARCHITECTURES[name] = builder
        return builder

    return add


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class SmallCNN(nn.Module):
    """Three conv blocks (width, 2*width, 4*width), global average pool, linear head."""

    def __init__(self, num_outputs: int, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(_block(3, width), _block(width, 2 * width),
                                      _block(2 * width, 4 * width))
        self.head = nn.Linear(4 * width, num_outputs)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class MLP(nn.Module):
    """The Colored-MNIST MLP of LfF/DisEnt: flatten, 100, 100, a 16-d embedding, linear head."""

    def __init__(self, num_outputs: int, in_features: int, hidden: int = 100, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, width),
            nn.ReLU(inplace=True))
        self.head = nn.Linear(width, num_outputs)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


@register("small_cnn")
def small_cnn(num_outputs: int, params, image_size: int) -> nn.Module:
    return SmallCNN(num_outputs, params.width)


@register("mlp")
def mlp(num_outputs: int, params, image_size: int) -> nn.Module:
    return MLP(num_outputs, 3 * image_size * image_size)


class ResNetClassifier(nn.Module):
    """A torchvision ResNet trunk and the head of Ramaswamy et al.: Linear-ReLU-Dropout-Linear."""

    def __init__(self, trunk: nn.Module, num_outputs: int):
        super().__init__()
        features = trunk.fc.in_features
        trunk.fc = nn.Identity()
        self.trunk = trunk
        self.head = nn.Sequential(nn.Linear(features, features), nn.ReLU(inplace=True),
                                  nn.Dropout(0.5), nn.Linear(features, num_outputs))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def _resnet(factory, num_outputs: int, params) -> nn.Module:
    net = factory(weights=None)
    if params.weights:
        path = Path(params.weights)
        if not path.is_file():
            raise DebiaslabError(f"train.weights: {path}: file not found (a local state dict; "
                                 "weights are never downloaded)")
        label = f"train.weights: {path}"
        state = load_weights_file(path, "cpu", what="state dict", label=label)
        # the classifier's own head replaces fc, so the donor's fc (1000 ImageNet classes) is left out
        load_module_weights(net, state, label, ignore=("fc.",), mismatch=f"does not match {params.arch}")
    return ResNetClassifier(net, num_outputs)


@register("resnet18")
def resnet18(num_outputs: int, params, image_size: int) -> nn.Module:
    import torchvision  # here, not at the top: importing it costs 2 s per stage (torch._dynamo)

    return _resnet(torchvision.models.resnet18, num_outputs, params)


@register("resnet50")
def resnet50(num_outputs: int, params, image_size: int) -> nn.Module:
    import torchvision

    return _resnet(torchvision.models.resnet50, num_outputs, params)


def embed_width(model: nn.Module) -> int:
    """Width of ``model.embed(x)``: the input size of its head (a Linear or a Sequential)."""
    head = model.head if isinstance(model.head, nn.Linear) else model.head[0]
    return head.in_features


def build_model(num_outputs: int, params, image_size: int = 32) -> nn.Module:
    if params.arch not in ARCHITECTURES:
        raise DebiaslabError(f"train.arch: unknown architecture {params.arch!r} "
                             f"(valid: {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[params.arch](num_outputs, params, image_size)
