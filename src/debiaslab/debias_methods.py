"""Debiasing with a biased auxiliary model: GCE, LfF and DisEnt, with or without BiasEnsemble.

A biased model f_B is pushed to fit the easy, bias-aligned samples (generalised cross-entropy);
the debiased model f_D is reweighted toward the samples f_B finds hard (Nam et al. 2020, LfF).
DisEnt (Lee et al. 2021) adds disentangled features and swaps the bias half between samples.
With BiasEnsemble (Lee et al. 2023) f_B instead learns with plain cross-entropy only from the
samples an ensemble of GCE models selected as bias-aligned (``context["bias_selected"]``).
Each method is one class on the common trainer (see :mod:`debiaslab.methods`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import ArrayDataset, Batch
from .errors import DebiaslabError
from .methods import Method, register_method
from .models import embed_width


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


class _BiasedAuxiliary(Method):
    """Shared parts of LfF and DisEnt: two EMAs and the biased branch's loss, GCE or BE-selected CE."""

    uses_bias_ensemble = False
    supports_distributed = False  # the per-sample loss EMAs would diverge between processes
    resumable = False  # ... and are not part of the resume state

    def __init__(self, factory, params, device, hparams=None, context=None):
        super().__init__(factory, params, device, hparams, context)
        selected = (context or {}).get("bias_selected")
        if self.uses_bias_ensemble and selected is None and (context or {}).get("training", True):
            raise DebiaslabError(f"{self.name}: needs the BiasEnsemble selection "
                                 "(run the bias_ensemble stage)")
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


@register_method("gce")
class GCE(Method):
    """A deliberately biased model: generalised cross-entropy (BiasEnsemble's members)."""

    def update(self, batch: Batch) -> dict[str, float]:
        loss = gce_loss(self.predict(batch.x), batch.y.long(), self.hparams["q"]).mean()
        self.step(loss)
        return {"loss": loss.item()}


@register_method("lff")
class LfF(_BiasedAuxiliary):
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


@register_method("lff_be")
class LfFBiasEnsemble(LfF):
    """LfF whose f_B learns only from the BiasEnsemble-selected bias-aligned samples."""

    uses_bias_ensemble = True


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
class DisEnt(_BiasedAuxiliary):
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


@register_method("disent_be")
class DisEntBiasEnsemble(DisEnt):
    """DisEnt whose bias branch learns only from the BiasEnsemble-selected samples."""

    uses_bias_ensemble = True


def vote_bias_aligned(true_class_probs: np.ndarray, *, tau: float, min_votes: int) -> np.ndarray:
    """BiasEnsemble selection: each model votes "aligned" where p(true class) > τ; a sample is
    selected when at least ``min_votes`` models vote so. ``true_class_probs`` is (M, N)."""
    votes = (np.asarray(true_class_probs) > tau).sum(0)
    return votes >= min_votes


def selection_quality(selected: np.ndarray, aligned: np.ndarray) -> dict[str, float]:
    """How well the selection finds bias-aligned samples, where true bias labels are known:
    precision of the aligned selection and recall of the conflicting samples (left out)."""
    selected, aligned = np.asarray(selected, bool), np.asarray(aligned, bool)
    precision = float(aligned[selected].mean()) if selected.any() else float("nan")
    recall = float((~selected[~aligned]).mean()) if (~aligned).any() else float("nan")
    return {"aligned_precision": precision, "conflicting_recall": recall,
            "selected_fraction": float(selected.mean())}
