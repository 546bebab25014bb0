"""Dr-Fairness (Roh et al., TMLR 2023): λ and μ over real and generated data, learnt by a hypergradient."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..data import ArrayDataset
from ..errors import DebiaslabError
from .base import register_method, update_average
from .fair_sampler import SOURCES, FairSampler, fairness_gap, hypergradient_scores, split_head

# k: weight of the mean loss; update_iter: batches per optimiser and sampler step; ema_decay: of the
# weights that predict (0: the trained weights themselves)
HPARAMS = {"fairness": "eo", "k": 20.0, "lr": 0.005, "val_batch": 16, "update_iter": 1,
           "ema_decay": 0.99}


@register_method("drfairness")
class DrFairness(FairSampler):
    """Dr-Fairness: λ and μ learnt by a hypergradient of a fairness objective on real data.

    Training data are real and generated rows in one ArrayDataset. Context keys:
    ``"generated"`` (bool (N,), marks the generated rows), ``"val_real"`` and ``"val_generated"``
    (ArrayDatasets with y and g). λ = softmax of per-label group logits, μ = sigmoid of per-cell
    logits. Every step, on ``val_batch`` samples per (y, g) cell of each validation set:

    - outer F = :func:`fairness_gap` of the real cell losses + k · the mean real loss (cells
      weighted by the real training data's shares);
    - inner G = Σ λ·μ·ℓ_real + λ·(1−μ)·ℓ_generated over the cells;
    - dF/d(logits) by the implicit function theorem with H⁻¹ ≈ I on the last layer's weights
      (:func:`hypergradient_scores`), then one Adam step of rate ``lr`` on the logits.

    Batches are composed lazily from the current λ, μ: see :class:`FairSampler` and
    :class:`ComposedOrder`. As the original (``--update_iter``, ``--use_ema --ema_decay``):

    - the gradients of ``update_iter`` batches, composed from the same λ and μ, are averaged into
      one optimiser step, and λ and μ are updated once per step;
    - with ``ema_decay`` > 0, ``self.model``, the network that is validated, selected and saved, is
      an exponential moving average of the trained network's parameters (updated after every
      optimiser step, started at the first; BatchNorm statistics are the trained network's). The
      sampler's probes and hypergradient use the trained network, ``self.network``.
    """

    uses_generated = True
    context_keys = ("generated", "val_real", "val_generated")

    def __init__(self, factory, params, device, hparams=None, context=None):
        super().__init__(factory, params, device, hparams, context)
        missing = [k for k in self.context_keys if self.context.get(k) is None]
        if missing and self.context.get("training", True):
            raise DebiaslabError(f"drfairness: context is missing {', '.join(missing)} (needs a "
                                 "generated-row mask and real and generated validation sets)")
        if int(self.hparams["update_iter"]) < 1:  # params.yaml's values are checked on load
            raise DebiaslabError("drfairness: update_iter must be a positive integer")
        if not 0 <= float(self.hparams["ema_decay"]) < 1:
            raise DebiaslabError("drfairness: ema_decay must be a number in [0, 1) (0: no average)")
        if self.hparams["ema_decay"] and self.context.get("training", True):
            self.trained = self.model  # the optimiser's parameters stay this network's
            self.model = copy.deepcopy(self.trained).requires_grad_(False)
        self.averaged_steps = 0
        self.logits = torch.zeros(2, 2, 2, device=device, requires_grad=True)  # [λ | μ, y, g]

    @property
    def network(self) -> nn.Module:
        return getattr(self, "trained", self.model)

    def after_step(self) -> None:
        if self.network is not self.model:  # the first average is the weights after step one
            decay = float(self.hparams["ema_decay"]) if self.averaged_steps else 0.0
            update_average(self.model, self.network, decay)
            self.averaged_steps += 1

    def _generated_mask(self, train: ArrayDataset) -> np.ndarray:
        mask = np.asarray(self.context["generated"]).astype(bool).ravel()
        if len(mask) != len(train):
            raise DebiaslabError(f"drfairness: context['generated'] has {len(mask)} entries for "
                                 f"{len(train)} training samples")
        return mask

    def _cells(self, data, rows, where):
        try:
            return super()._cells(data, rows, where)
        except DebiaslabError as err:
            if where != "generated":
                raise
            raise DebiaslabError(f"{err}; generate some for that cell (e.g. with debiaslab.gan) "
                                 "and mark them in context['generated']") from None

    def init_sampler(self, group_share: np.ndarray) -> None:
        self.set_sampler(group_share, np.full((2, 2), 0.5))
        self.optimizer_sampler = torch.optim.Adam([self.logits], lr=float(self.hparams["lr"]))
        self.probes = {}
        for source in SOURCES:
            data = self.context[f"val_{source}"]
            self._check_labels(data, f"context['val_{source}']")
            rows = np.arange(len(data))
            self.probes[source] = self.probe_cursors(self._cells(data, rows, f"val_{source}"))

    def set_sampler(self, lam, mu=None) -> None:
        with torch.no_grad():
            self.logits[0] = torch.as_tensor(np.log(np.asarray(lam, dtype=np.float64)))
            if mu is not None:
                mu = torch.as_tensor(np.asarray(mu, dtype=np.float64))
                self.logits[1] = torch.logit(mu)

    def weights(self) -> torch.Tensor:
        """(2, 2, 2) weights of the cells in G, [y, g, source]: λ·μ and λ·(1−μ)."""
        lam, mu = torch.softmax(self.logits[0], 1), torch.sigmoid(self.logits[1])
        return torch.stack([lam * mu, lam * (1 - mu)], -1)

    @property
    def lam(self) -> np.ndarray:
        return torch.softmax(self.logits[0].detach(), 1).double().cpu().numpy()

    @property
    def mu(self) -> np.ndarray:
        return torch.sigmoid(self.logits[1].detach()).double().cpu().numpy()

    def outer_objective(self, real: torch.Tensor) -> torch.Tensor:
        gap = fairness_gap(real, self.hparams["fairness"], self.cell_share)
        return gap + float(self.hparams["k"]) * (self.cell_share * real).sum()

    def adapt(self) -> dict[str, float]:
        real, generated = (self.probe_losses(self.context[f"val_{s}"], self.probes[s]) for s in SOURCES)
        outer = self.outer_objective(real)
        params = list(split_head(self.network)[1].parameters())
        scores = hypergradient_scores(outer, torch.stack([real, generated], -1), params)
        self.optimizer_sampler.zero_grad(set_to_none=True)
        (-(self.weights() * scores.detach()).sum()).backward()  # its gradient is dF/d(logits)
        self.optimizer_sampler.step()
        gap = fairness_gap(real.detach(), self.hparams["fairness"], self.cell_share)
        return {"outer": outer.item(), "gap": gap.item()}
