"""What the adversarial-removal methods share: gradient reversal, protected-balanced epochs and
the adversary's loss."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data import ArrayDataset, group_balanced_order
from ..errors import DebiaslabError


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight):
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.weight * grad, None


def gradient_reversal(x: torch.Tensor, weight: float) -> torch.Tensor:
    """Identity forward; multiplies the gradient by -weight backward (Ganin & Lempitsky 2015)."""
    return _GradientReversal.apply(x, weight)


def protected_balanced_order(method: str, data: ArrayDataset, generator: torch.Generator) -> np.ndarray:
    """An epoch of group-balanced batches, so an adversary cannot win by predicting the majority."""
    if data.g is None:
        raise DebiaslabError(f"{method}: training data has no protected labels")
    return group_balanced_order(data.g, generator)


def adversary_loss(logits: torch.Tensor, protected: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """The adversary's cross-entropy on the protected labels, and its logs (loss, accuracy)."""
    loss = F.cross_entropy(logits.float(), protected)
    accuracy = (logits.argmax(1) == protected).float().mean()
    return loss, {"adversary_loss": loss.item(), "adversary_acc": accuracy.item()}
