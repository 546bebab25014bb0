"""GCE: a deliberately biased model trained with generalised cross-entropy (BiasEnsemble's members)."""

from __future__ import annotations

from ..data import Batch
from .base import Method, register_method
from .biased_auxiliary import gce_loss

HPARAMS = {"q": 0.7}  # GCE's exponent


@register_method("gce")
class GCE(Method):
    """Generalised cross-entropy on every sample: it fits the easy, bias-aligned samples first."""

    def update(self, batch: Batch) -> dict[str, float]:
        loss = gce_loss(self.predict(batch.x), batch.y.long(), self.hparams["q"]).mean()
        self.step(loss)
        return {"loss": loss.item()}
