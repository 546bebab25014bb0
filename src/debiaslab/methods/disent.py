"""DisEnt: disentangled feature augmentation (Lee et al. 2021), and with BiasEnsemble's selection."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data import ArrayDataset, Batch
from ..models import embed_width
from .base import register_method
from .biased_auxiliary import BiasedAuxiliary

HPARAMS = {"q": 0.7, "ema_alpha": 0.7, "lambda_dis_align": 10.0, "lambda_swap_align": 10.0,
           "lambda_swap": 1.0, "swap_after": 0.2}  # swap_after: share of all steps before swapping


class DisEntNet(nn.Module):
    """Two encoders (intrinsic, bias) and a classifier for each on the concatenated features."""

    def __init__(self, intrinsic: nn.Module, bias: nn.Module, width: int, num_classes: int):
        super().__init__()
        self.intrinsic, self.bias = intrinsic, bias
        self.head_i = nn.Linear(2 * width, num_classes)
        self.head_b = nn.Linear(2 * width, num_classes)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.intrinsic.embed(x), self.bias.embed(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z_i, z_b = self.features(x)
        return self.head_i(torch.cat([z_i, z_b], 1))


@register_method("disent")
class DisEnt(BiasedAuxiliary):
    """Disentangled feature augmentation (Lee et al. 2021).

    The intrinsic classifier sees [z_i, z_b.detach()] and learns with W·CE; the bias classifier
    sees [z_i.detach(), z_b] and learns with GCE (BE: CE on the selected set). After the warm-up
    (``swap_after`` of all steps) z_b is permuted within the batch, making new feature
    combinations whose target label stays and whose bias label follows the permutation.
    """

    def __init__(self, factory, params, device, hparams=None, context=None):
        super().__init__(factory, params, device, hparams, context)
        intrinsic = self.model
        num_classes = intrinsic.head.out_features if isinstance(intrinsic.head, nn.Linear) \
            else intrinsic.head[-1].out_features
        net = DisEntNet(intrinsic, factory(), embed_width(intrinsic), num_classes)
        self.model = self._place(net)
        self.optimizer = self.make_optimizer(self.model.parameters())
        self.steps, self.swap_step = 0, 0

    def setup(self, train: ArrayDataset, *, total_steps: int) -> None:
        super().setup(train, total_steps=total_steps)
        self.swap_step = int(self.hparams["swap_after"] * total_steps)

    def _heads(self, z_i: torch.Tensor, z_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(intrinsic logits, bias logits), each head seeing the other half detached."""
        net = self.model
        logits_i = net.head_i(torch.cat([z_i, z_b.detach()], 1)).float()
        logits_b = net.head_b(torch.cat([z_i.detach(), z_b], 1)).float()
        return logits_i, logits_b

    def update(self, batch: Batch) -> dict[str, float]:
        y, index, h = batch.y.long(), batch.index.to(self.device), self.hparams
        with self.autocast():
            z_i, z_b = self.model.features(batch.x)
            logits_i, logits_b = self._heads(z_i, z_b)
        ce_i = F.cross_entropy(logits_i, y, reduction="none")
        ce_b = F.cross_entropy(logits_b, y, reduction="none")
        weight = self.reweight(index, ce_b, ce_i)  # W from the bias branch vs the intrinsic one
        loss = (weight * ce_i).mean() + h["lambda_dis_align"] * self.bias_loss(logits_b, y, index)
        self.steps += 1
        if self.steps > self.swap_step:
            perm = torch.randperm(len(y), device=self.device)
            with self.autocast():
                swap_i, swap_b = self._heads(z_i, z_b[perm])
            swap = (weight * F.cross_entropy(swap_i, y, reduction="none")).mean() + \
                h["lambda_swap_align"] * self.bias_loss(swap_b, y[perm], index[perm])
            loss = loss + h["lambda_swap"] * swap
        self.step(loss)
        return {"loss": loss.item(), "weight": weight.mean().item()}
