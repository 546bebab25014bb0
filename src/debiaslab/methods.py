"""Training methods, DomainBed style: a small class with ``update(batch)`` and ``predict(x)``.

Adding a method is one class registered by name; the training loop in :mod:`debiaslab.train`
never changes. A method owns its model(s) and optimiser(s); its update returns scalar logs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .data import Batch
from .device import autocast

METHODS: dict[str, type[Method]] = {}


def register_method(name: str):
    def add(cls):
        METHODS[name] = cls
        cls.name = name
        return cls

    return add


class Method:
    """Base class: Adam on one model, bf16 autocast for the forward pass where enabled."""

    name = "base"

    def __init__(self, model: nn.Module, params, device: torch.device):
        self.params, self.device = params, device
        self.model = model.to(device)
        if params.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=params.lr,
                                          weight_decay=params.weight_decay)

    def autocast(self):
        return autocast(self.device, self.params.precision)

    def step(self, loss: torch.Tensor) -> None:
        # backward outside autocast, as PyTorch recommends; the loss itself is fp32
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def update(self, batch: Batch) -> dict[str, float]:
        raise NotImplementedError

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Logits in fp32."""
        with self.autocast():
            return self.model(x).float()


@register_method("erm")
class ERM(Method):
    """Empirical risk minimisation: the baseline of every paper, binary cross-entropy."""

    def update(self, batch: Batch) -> dict[str, float]:
        logits = self.predict(batch.x).squeeze(1) if batch.y.ndim == 1 else self.predict(batch.x)
        loss = F.binary_cross_entropy_with_logits(logits, batch.y)
        self.step(loss)
        return {"loss": loss.item()}
