"""Adversarial removal of the protected attribute from the representation (Wang et al. 2019)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data import ArrayDataset, Batch
from ..models import embed_width
from .base import Method, per_sample_loss, register_method
from .removal import adversary_loss, gradient_reversal, protected_balanced_order

HPARAMS = {"grl_weight": 1.0, "hidden": 128}  # λ of the gradient reversal layer; adversary width
MULTILABEL = True


@register_method("adversarial")
class AdversarialRemoval(Method):
    """Adversarial removal of the protected attribute from the representation (Wang et al. 2019).

    An adversary MLP predicts the protected attribute from ``model.embed(x)`` through a gradient
    reversal layer of weight ``grl_weight`` (λ): minimising the summed loss with one optimiser trains the
    adversary to find the attribute and the encoder to hide it. Batches are balanced by group, so
    the adversary cannot win by predicting the majority group.
    """

    def __init__(self, factory, params, device, hparams=None, context=None):
        super().__init__(factory, params, device, hparams, context)
        hidden = int(self.hparams["hidden"])
        self.adversary = nn.Sequential(nn.Linear(embed_width(self.model), hidden), nn.ReLU(inplace=True),
                                       nn.Linear(hidden, 2)).to(device)
        self.optimizer = self.make_optimizer([*self.model.parameters(),
                                              *self.adversary.parameters()])

    def epoch_order(self, data: ArrayDataset, generator: torch.Generator) -> np.ndarray:
        return protected_balanced_order(self.name, data, generator)

    def update(self, batch: Batch) -> dict[str, float]:
        with self.autocast():
            features = self.model.embed(batch.x)
            logits = self.model.head(features)
            adversary = self.adversary(gradient_reversal(features, float(self.hparams["grl_weight"])))
        task = per_sample_loss(logits, batch.y).mean()
        adv, adv_logs = adversary_loss(adversary, batch.g)
        self.step(task + adv)
        return {"loss": task.item(), **adv_logs}
