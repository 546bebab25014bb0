"""Training methods, DomainBed style: a small class with ``update(batch)`` and ``predict(x)``.

Adding a method is one class registered by name; the training loop in :mod:`debiaslab.train`
never changes. A method owns its model(s) and optimiser(s), may choose the order in which an
epoch visits the training set (``epoch_order``), and returns scalar logs from ``update``.
Method-specific hyperparameters arrive as the dict ``hparams`` (a params.yaml group); their names
and defaults are declared in :data:`debiaslab.params.METHOD_HPARAMS`, torch-free, so params.yaml
is checked against them before any stage imports a method.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import distributed
from .data import ArrayDataset, Batch, group_balanced_order, shuffled_order
from .device import autocast
from .errors import DebiaslabError
from .models import embed_width
from .params import METHOD_HPARAMS

METHODS: dict[str, type[Method]] = {}


def register_method(name: str):
    """Register ``cls`` under ``name``; its ``defaults`` are ``METHOD_HPARAMS[name]`` (one list for
    the methods and for the check of params.yaml)."""

    def add(cls):
        if name not in METHOD_HPARAMS:
            raise KeyError(f"method {name!r}: declare its hyperparameters in params.METHOD_HPARAMS")
        METHODS[name] = cls
        cls.name = name
        cls.defaults = METHOD_HPARAMS[name]
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


class Method:
    """Base class: Adam on one model, bf16 autocast for the forward pass where enabled."""

    name = "base"
    defaults: dict = {}  # set by register_method from params.METHOD_HPARAMS
    # False for methods whose per-sample state (indexed by batch.index) each process would keep
    # for its own part of the batches only; the trainer then refuses train.nproc_per_node > 1.
    supports_distributed = True
    # False for methods with state beyond their models and optimiser (sampler weights, per-sample
    # averages): training then restarts from scratch after an interruption instead of resuming.
    resumable = True

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

    def step(self, loss: torch.Tensor) -> None:
        # backward outside autocast, as PyTorch recommends; the loss itself is fp32
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.optimizer)  # no-op in a single process
        self.optimizer.step()
        distributed.broadcast_state(self.modules(), buffers_only=True)

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


@register_method("erm")
class ERM(Method):
    """Empirical risk minimisation: the baseline of every paper."""

    def update(self, batch: Batch) -> dict[str, float]:
        loss = per_sample_loss(self.predict(batch.x), batch.y).mean()
        self.step(loss)
        return {"loss": loss.item()}


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


@register_method("adversarial")
class AdversarialRemoval(Method):
    """Adversarial removal of the protected attribute from the representation (Wang et al. 2019).

    An adversary MLP predicts the protected attribute from ``model.embed(x)`` through a gradient
    reversal layer of weight ``grl_weight`` (λ): minimising the summed loss with one optimiser trains the
    adversary to find the attribute and the encoder to hide it. Batches are balanced by group, so
    the adversary cannot win by predicting the majority group.
    """

    def __init__(self, factory, params, device, hparams=None, context=None):
        super().__init__(factory, params, device, hparams, context)
        hidden = int(self.hparams["hidden"])
        self.adversary = nn.Sequential(nn.Linear(embed_width(self.model), hidden), nn.ReLU(inplace=True),
                                       nn.Linear(hidden, 2)).to(device)
        self.optimizer = self.make_optimizer([*self.model.parameters(),
                                              *self.adversary.parameters()])

    def epoch_order(self, data: ArrayDataset, generator: torch.Generator) -> np.ndarray:
        if data.g is None:
            raise DebiaslabError("adversarial: training data has no protected labels")
        return group_balanced_order(data.g, generator)

    def update(self, batch: Batch) -> dict[str, float]:
        with self.autocast():
            features = self.model.embed(batch.x)
            logits = self.model.head(features)
            adversary = self.adversary(gradient_reversal(features, float(self.hparams["grl_weight"])))
        task = per_sample_loss(logits, batch.y).mean()
        adv = F.cross_entropy(adversary.float(), batch.g)
        self.step(task + adv)
        adv_acc = (adversary.argmax(1) == batch.g).float().mean()
        return {"loss": task.item(), "adversary_loss": adv.item(), "adversary_acc": adv_acc.item()}
