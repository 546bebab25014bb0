"""What LfF and DisEnt share: a biased auxiliary model, its GCE loss and the per-sample EMAs.

A biased model f_B is pushed to fit the easy, bias-aligned samples (generalised cross-entropy);
the debiased model f_D is reweighted toward the samples f_B finds hard (Nam et al. 2020, LfF).
With BiasEnsemble (Lee et al. 2023) f_B instead learns with plain cross-entropy only from the
samples an ensemble of GCE models selected as bias-aligned: the stage passes that selection as
``context["bias_selected"]`` (the runs named NAME_be); without it f_B learns with GCE.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data import ArrayDataset
from ..errors import DebiaslabError
from .base import Method


def gce_loss(logits: torch.Tensor, y: torch.Tensor, q: float = 0.7) -> torch.Tensor:
    """Generalised cross-entropy, per sample, as CE · p_y^q with p_y detached.

    Its gradient is p_y^q · ∇CE, the gradient of (1 − p_y^q) / q (Zhang & Sabuncu 2018): samples
    the model already fits (high p_y) weigh more, so it learns the easy bias first. LfF's code
    multiplies this by q as well, a constant rescaling we leave out.
    """
    logits = logits.float()
    p_y = torch.softmax(logits, 1).gather(1, y[:, None]).squeeze(1).detach()
    return F.cross_entropy(logits, y, reduction="none") * p_y ** q


class SampleEMA:
    """Per-sample exponential moving average of a loss, normalised by its class maximum (LfF).

    A sample's first visit stores its loss; later visits blend with weight ``alpha`` on the past.
    """

    def __init__(self, labels: torch.Tensor, num_classes: int, alpha: float):
        self.labels, self.num_classes, self.alpha = labels, num_classes, alpha
        self.value = torch.zeros(len(labels), device=labels.device)
        self.seen = torch.zeros(len(labels), device=labels.device)

    def update(self, index: torch.Tensor, loss: torch.Tensor) -> None:
        keep = self.alpha * self.seen[index]
        self.value[index] = keep * self.value[index] + (1 - keep) * loss.detach().float()
        self.seen[index] = 1.0

    def normalised(self, index: torch.Tensor) -> torch.Tensor:
        class_max = torch.zeros(self.num_classes, device=self.value.device).scatter_reduce(
            0, self.labels, self.value, reduce="amax", include_self=True)
        return self.value[index] / (class_max[self.labels[index]] + 1e-8)


def relative_difficulty(ema_b: SampleEMA, ema_d: SampleEMA, index: torch.Tensor) -> torch.Tensor:
    """LfF's weight W = ℓ_B / (ℓ_B + ℓ_D + 1e-8): high where the biased model struggles."""
    lb, ld = ema_b.normalised(index), ema_d.normalised(index)
    return lb / (lb + ld + 1e-8)


class BiasedAuxiliary(Method):
    """Shared parts of LfF and DisEnt: two EMAs and the biased branch's loss, GCE or BE-selected CE."""

    context_keys = ("bias_selected",)  # optional: BiasEnsemble's selection for f_B
    supports_distributed = False  # the per-sample loss EMAs would diverge between processes
    resumable = False  # ... and are not part of the resume state

    def __init__(self, factory, params, device, hparams=None, context=None):
        super().__init__(factory, params, device, hparams, context)
        selected = (context or {}).get("bias_selected")
        self.selected = None if selected is None else torch.as_tensor(
            np.asarray(selected), dtype=torch.float32, device=device)

    def setup(self, train: ArrayDataset, *, total_steps: int) -> None:
        labels = torch.as_tensor(train.y, dtype=torch.long, device=self.device)
        num_classes = int(labels.max()) + 1
        if self.selected is not None and len(self.selected) != len(train):
            raise DebiaslabError(f"{self.name}: BiasEnsemble selection has {len(self.selected)} "
                                 f"entries for {len(train)} training samples (rerun bias_ensemble)")
        self.ema_b = SampleEMA(labels, num_classes, self.hparams["ema_alpha"])
        self.ema_d = SampleEMA(labels, num_classes, self.hparams["ema_alpha"])

    def bias_loss(self, logits: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """GCE on every sample; with BE, plain CE on the samples selected as bias-aligned only."""
        if self.selected is None:
            return gce_loss(logits, y, self.hparams["q"]).mean()
        weight = self.selected[index]
        ce = F.cross_entropy(logits.float(), y, reduction="none")
        return (ce * weight).sum() / weight.sum().clamp(min=1.0)

    def reweight(self, index: torch.Tensor, ce_b: torch.Tensor, ce_d: torch.Tensor) -> torch.Tensor:
        """Update both EMAs with this batch's losses (biased first) and return W for the batch."""
        self.ema_b.update(index, ce_b)
        self.ema_d.update(index, ce_d)
        return relative_difficulty(self.ema_b, self.ema_d, index)
