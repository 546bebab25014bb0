"""ERM: empirical risk minimisation, the baseline of every paper."""

from __future__ import annotations

from ..data import Batch
from .base import Method, per_sample_loss, register_method

HPARAMS: dict = {}  # no hyperparameters of its own
MULTILABEL = True  # trains on one 0/1 column per label too (leakage's models)


@register_method("erm")
class ERM(Method):
    """Plain training on the mean loss (one 0/1 column per label for multi-label data)."""

    def update(self, batch: Batch) -> dict[str, float]:
        loss = per_sample_loss(self.predict(batch.x), batch.y).mean()
        self.step(loss)
        return {"loss": loss.item()}
