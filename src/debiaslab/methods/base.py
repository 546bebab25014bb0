"""The base of every training method, DomainBed style: ``update(batch)`` and ``predict(x)``.

A method is one module of this package, ``methods/NAME.py``, holding one class registered as NAME
and the literal ``HPARAMS`` dict of its hyperparameters' defaults (params.yaml's ``hparams.NAME``
is checked against it without importing torch: :func:`debiaslab.params.declared_methods`). The
training loop in :mod:`debiaslab.train` never changes. A method owns its model(s) and
optimiser(s), may choose the order in which an epoch visits the training set (``epoch_order``),
and returns scalar logs from ``update``. Modules are imported by name when a method is used
(:func:`debiaslab.methods.get_method`), so a stage runs, and DVC makes it depend on, only the
method modules it trains.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from ..data import ArrayDataset, Batch, shuffled_order
from ..device import autocast
from ..errors import DebiaslabError

METHODS: dict[str, type[Method]] = {}


def register_method(name: str):
    """Register ``cls`` under ``name``; its ``defaults`` are its module's ``HPARAMS`` (the literal
    that params.yaml is checked against before any stage imports torch)."""

    def add(cls):
        module = sys.modules[cls.__module__]
        if not isinstance(getattr(module, "HPARAMS", None), dict):
            raise KeyError(f"method {name!r}: declare HPARAMS = {{...}} in {cls.__module__}")
        METHODS[name] = cls
        cls.name = name
        cls.defaults = module.HPARAMS
        return cls

    return add


def per_sample_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """BCE for binary (B,) and multi-label (B, K) 0/1 targets; cross-entropy for class indices.

    Multi-label losses are averaged over labels, so every task gives one loss per sample (B,).
    """
    logits = logits.float()
    if y.ndim == 1 and logits.shape[1] > 1:
        return F.cross_entropy(logits, y.long(), reduction="none")
    if y.ndim == 1:
        logits = logits.squeeze(1)
    loss = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return loss if loss.ndim == 1 else loss.mean(1)


@torch.no_grad()
def update_average(average: nn.Module, model: nn.Module, decay: float) -> None:
    """average ← decay·average + (1 − decay)·model, parameter by parameter (an EMA of the weights);
    buffers (BatchNorm statistics) are copied from ``model``, which an EMA of the parameters
    alone, as Dr-Fairness keeps, leaves them."""
    for kept, new in zip(average.parameters(), model.parameters(), strict=True):
        kept.lerp_(new, 1.0 - decay)
    for kept, new in zip(average.buffers(), model.buffers(), strict=True):
        kept.copy_(new)


class Method:
    """Base class: Adam on one model, bf16 autocast for the forward pass where enabled."""

    name = "base"
    defaults: dict = {}  # set by register_method from the module's HPARAMS
    # False for methods whose per-sample state (indexed by batch.index) each process would keep
    # for its own part of the batches only; the trainer then refuses train.nproc_per_node > 1.
    supports_distributed = True
    # False for methods with state beyond their models and optimiser (sampler weights, per-sample
    # averages): training then restarts from scratch after an interruption instead of resuming.
    resumable = True
    # What the method reads from ``context`` beyond hyperparameters; stages supply these by name
    # (e.g. "bias_selected": BiasEnsemble's selection, "generated": which rows are generated).
    context_keys: tuple[str, ...] = ()
    accumulated = 0  # backward passes since the optimiser last stepped (see step)

    def __init__(self, factory: Callable[[], nn.Module], params, device: torch.device,
                 hparams: dict | None = None, context: dict | None = None):
        """``factory()`` builds a fresh model (methods with two models call it twice);
        ``context`` carries data a method needs beyond hyperparameters (e.g. a selection mask)."""
        self.params, self.device = params, device
        unknown = set(hparams or {}) - set(self.defaults)
        if unknown:
            raise DebiaslabError(f"{self.name}: unknown hyperparameter {sorted(unknown)[0]!r} "
                                 f"(expected one of: {', '.join(self.defaults) or 'none'})")
        self.hparams = {**self.defaults, **(hparams or {})}
        self.model = self._place(factory())
        self.optimizer = self.make_optimizer(self.model.parameters())

    def _place(self, module: nn.Module) -> nn.Module:
        module = module.to(self.device)
        return module.to(memory_format=torch.channels_last) if self.params.channels_last else module

    def make_optimizer(self, parameters) -> torch.optim.Optimizer:
        return torch.optim.Adam(parameters, lr=self.params.lr, weight_decay=self.params.weight_decay)

    def autocast(self):
        return autocast(self.device, self.params.precision)

    def step(self, loss: torch.Tensor, *, accumulate: int = 1) -> bool:
        """Backpropagate ``loss``; the optimiser steps once every ``accumulate`` calls, on the mean
        of their gradients (gradient accumulation, e.g. Dr-Fairness's ``--update_iter``).
        Returns whether it stepped."""
        if not self.accumulated:
            self.optimizer.zero_grad(set_to_none=True)
        # backward outside autocast, as PyTorch recommends; the loss itself is fp32
        (loss if accumulate == 1 else loss / accumulate).backward()
        self.accumulated += 1
        if self.accumulated < accumulate:
            return False
        self.accumulated = 0
        distributed.average_gradients(self.optimizer)  # no-op in a single process
        self.optimizer.step()
        distributed.broadcast_state(self.modules(), buffers_only=True)
        return True

    def modules(self) -> list[nn.Module]:
        """Every network the method owns (the predicting model first)."""
        return [self.model, *(m for k, m in vars(self).items()
                              if isinstance(m, nn.Module) and k != "model")]

    def setup(self, train: ArrayDataset, *, total_steps: int) -> None:
        """Called once before training, for methods that keep per-sample state."""

    def epoch_order(self, data: ArrayDataset, generator: torch.Generator) -> np.ndarray:
        """The positions one training epoch visits; a fresh shuffle by default."""
        return shuffled_order(len(data), generator)

    def update(self, batch: Batch) -> dict[str, float]:
        raise NotImplementedError

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Logits in fp32."""
        with self.autocast():
            return self.model(x).float()

    def state_dict(self) -> dict:
        """What a checkpoint keeps: the weights of the model that predicts."""
        return self.model.state_dict()
