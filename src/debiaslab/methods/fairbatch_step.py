"""FairBatch, per step (this project's variant of Roh et al., ICLR 2021): λ moved by a fixed step
every training step, from small probe batches; ``fairbatch`` is the original, once per epoch."""

from __future__ import annotations

import numpy as np
import torch

from .base import register_method
from .fair_sampler import FairSampler, fairbatch_targets, fairness_gap

HPARAMS = {"fairness": "eo", "alpha": 0.005, "val_batch": 16}  # eo | eqopp | dp; λ's step; probe per cell


@register_method("fairbatch_step")
class FairBatchStep(FairSampler):
    """FairBatch per step: λ moves by ``alpha`` every step toward the group with the larger loss.

    Real data only. The per-cell losses come from a probe of ``val_batch`` training samples per
    (y, g) cell, so a group whose λ has reached 0 (absent from batches) can still win λ back.
    ``fairness``: "eo" adapts λ for both labels, "eqopp" for y = 1 only, "dp" both labels by a
    selection-rate proxy (see :func:`fairbatch_targets`). Batches are composed lazily, see
    :class:`FairSampler` and :class:`ComposedOrder`.
    """

    def init_sampler(self, group_share: np.ndarray) -> None:
        self.lam, self.mu = group_share.copy(), np.ones((2, 2))
        self.probes = self.probe_cursors(self.sources["real"])

    def set_sampler(self, lam, mu=None) -> None:
        self.lam = np.array(lam, dtype=np.float64)

    def move(self, losses: torch.Tensor) -> None:
        """Step λ by ``alpha`` toward the groups :func:`fairbatch_targets` picks, within [0, 1]."""
        alpha = float(self.hparams["alpha"])
        for y, g in fairbatch_targets(losses, self.hparams["fairness"], self.cell_share):
            self.lam[y, g] = min(self.lam[y, g] + alpha, 1.0)
            self.lam[y, 1 - g] = 1.0 - self.lam[y, g]

    def adapt(self) -> dict[str, float]:
        with torch.no_grad():
            losses = self.probe_losses(self.train_data, self.probes)
        self.move(losses)
        return {"gap": fairness_gap(losses, self.hparams["fairness"], self.cell_share).item()}
