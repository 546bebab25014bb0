"""FairBatch (Roh et al., ICLR 2021) as its original sampler runs: λ moved once per epoch, from
the losses of the whole training set."""

from __future__ import annotations

import numpy as np
import torch

from ..data import ArrayDataset
from .base import per_sample_loss, register_method
from .fair_sampler import CELLS, FairSampler, cell_means

HPARAMS = {"fairness": "eo", "alpha": 0.005}  # eo | eqopp | dp; λ's step per epoch


def epoch_move(lam: np.ndarray, losses: np.ndarray, fairness: str, alpha: float) -> np.ndarray:
    """λ after one epoch's update of the original sampler, from (2, 2) per-cell ``losses``.

    λ[y, 1] is the share of group 1 among label y's batch slots. "eqopp" moves label 1 only, "eo"
    and "dp" only the label whose two groups' losses differ more (label 0 on a tie). Label 1, and
    under "eo" label 0, moves by ``alpha`` toward the group with the larger loss (toward group 0
    when the losses are equal, as the original's ``else`` does). "dp" expects :func:`dp_losses`;
    there label 0 moves *away* from the group with the larger loss, as fewer of that group's
    negatives also raise its selection rate. Shares stay in [0, 1].
    """
    gaps = np.abs(losses[:, 1] - losses[:, 0])
    y = 1 if fairness == "eqopp" or gaps[1] > gaps[0] else 0
    toward_group_1 = losses[y, 1] > losses[y, 0]
    if fairness == "dp" and y == 0:
        toward_group_1 = not toward_group_1
    lam = lam.copy()
    lam[y, 1] = np.clip(lam[y, 1] + (alpha if toward_group_1 else -alpha), 0.0, 1.0)
    lam[y, 0] = 1.0 - lam[y, 1]
    return lam


def dp_losses(loss_as_positive: torch.Tensor, y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """(2, 2) demographic-parity losses of the original: the loss of calling each sample positive,
    summed over cell (y, g) and divided by the size of group g (not of the cell)."""
    group_size = torch.stack([(g == k).sum() for k in (0, 1)]).clamp(min=1)
    sums = torch.stack([loss_as_positive[(y == t) & (g == k)].sum() for t, k in CELLS]).view(2, 2)
    return sums / group_size


@register_method("fairbatch")
class FairBatch(FairSampler):
    """FairBatch: before each epoch's batches are drawn, λ moves by ``alpha`` (:func:`epoch_move`)
    from the current model's loss on every real training sample, per (y, g) cell.

    Real data only. "eo" and "eqopp" use the training loss; "dp" the loss of predicting 1 for every
    sample (:func:`dp_losses`). ``fairbatch_step`` is the per-step variant of this project.
    """

    def init_sampler(self, group_share: np.ndarray) -> None:
        self.lam, self.mu = group_share.copy(), np.ones((2, 2))

    def set_sampler(self, lam, mu=None) -> None:
        self.lam = np.array(lam, dtype=np.float64)

    def epoch_order(self, data: ArrayDataset, generator: torch.Generator):
        self.lam = epoch_move(self.lam, self.epoch_losses(data).numpy(), self.hparams["fairness"],
                              float(self.hparams["alpha"]))
        return super().epoch_order(data, generator)

    @torch.no_grad()
    def epoch_losses(self, data: ArrayDataset) -> torch.Tensor:
        """(2, 2) per-cell losses of the current model over every training sample (all real)."""
        training = self.model.training
        self.model.eval()  # scoring must not update BatchNorm's running statistics
        try:
            parts = [(self.predict(b.x), b.y, b.g) for b in data.batches(
                512, self.device, channels_last=self.params.channels_last)]
        finally:
            self.model.train(training)
        logits, y, g = (torch.cat(p).cpu() for p in zip(*parts, strict=True))
        if self.hparams["fairness"] == "dp":
            return dp_losses(per_sample_loss(logits, torch.ones_like(y)), y, g)
        return cell_means(per_sample_loss(logits, y), y, g)

    def adapt(self) -> dict[str, float]:
        return {}  # λ moves once per epoch, in epoch_order
