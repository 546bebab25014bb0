"""LfF: Learning from Failure (Nam et al. 2020), and with BiasEnsemble's selection (Lee et al. 2023)."""

from __future__ import annotations

import torch.nn.functional as F

from ..data import Batch
from .base import register_method
from .biased_auxiliary import BiasedAuxiliary

HPARAMS = {"q": 0.7, "ema_alpha": 0.7}  # GCE's exponent; the per-sample loss EMAs' weight on the past


@register_method("lff")
class LfF(BiasedAuxiliary):
    """Learning from Failure (Nam et al. 2020): f_D's CE weighted by W from f_B's and f_D's EMAs."""

    def __init__(self, factory, params, device, hparams=None, context=None):
        super().__init__(factory, params, device, hparams, context)
        self.bias_model = self._place(factory())
        self.optimizer = self.make_optimizer([*self.model.parameters(),
                                              *self.bias_model.parameters()])

    def update(self, batch: Batch) -> dict[str, float]:
        y, index = batch.y.long(), batch.index.to(self.device)
        with self.autocast():
            logits_b, logits_d = self.bias_model(batch.x).float(), self.model(batch.x).float()
        ce_b = F.cross_entropy(logits_b, y, reduction="none")
        ce_d = F.cross_entropy(logits_d, y, reduction="none")
        weight = self.reweight(index, ce_b, ce_d)
        loss_d = (weight * ce_d).mean()
        loss_b = self.bias_loss(logits_b, y, index)
        self.step(loss_d + loss_b)  # one backward pass for both models
        return {"loss": loss_d.item(), "bias_loss": loss_b.item(), "weight": weight.mean().item()}
