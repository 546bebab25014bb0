"""What FairBatch (ICLR 2021) and Dr-Fairness (TMLR 2023), both by Roh et al., share: fair batches.

Both methods train with the plain ERM loss; what they learn is *which samples make up a batch*:

- λ[y, g]: the share of protected group g among the samples of label y (each row sums to one),
  started at the real data's group proportions;
- μ[y, g]: the share of real (not generated) samples in cell (y, g), started at 0.5 (Dr-Fairness;
  FairBatch uses real data only, μ = 1).

A batch of B samples keeps the real label mix: label y gets S_y slots, and cell (y, g) gets
λ·μ·S_y real and λ·(1−μ)·S_y generated samples. Counts are rounded by largest remainder: every
count is the floor or the ceiling of its quota, the units left after flooring go to the largest
fractional parts, so the cells of a label sum to S_y exactly and the labels sum to B exactly.
Within a cell, samples are drawn without replacement from a shuffled copy that is reshuffled when
it runs out (one cursor per cell, seeded from the generator the loop passes to ``epoch_order``).

Written from the description in REFERENCE.md §4 only: the original code's licence forbids copying.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..data import ArrayDataset, Batch
from ..errors import DebiaslabError
from ..params import FAIRNESS  # equalised odds, equal opportunity, demographic parity
from .base import Method, per_sample_loss

CELLS = ((0, 0), (0, 1), (1, 0), (1, 1))  # (y, g), in the row-major order of a (2, 2) array
SOURCES = ("real", "generated")


# --------------------------------------------------------------------------- batch composition
def largest_remainder(quotas, total: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Integers summing to ``total``, each the floor or the ceiling of its quota.

    ``quotas`` must sum to ``total``. Floors first; the units left over go to the largest
    fractional parts, never to a cell whose quota is zero. Ties go to the first cell, or to random
    cells with ``rng``: at λ = μ = ½ a fixed rule would give group 0 the odd sample every batch.
    """
    quotas = np.asarray(quotas, dtype=np.float64)
    counts = np.floor(quotas + 1e-9).astype(np.int64)  # a quota of 2.9999999997 is 3, not 2
    frac = np.where(quotas > 0, np.round(quotas - counts, 9), -np.inf)  # 2.5 ties 2.4999999999
    tiebreak = np.arange(len(quotas)) if rng is None else rng.random(len(quotas))
    counts[np.lexsort((tiebreak, -frac))[:total - counts.sum()]] += 1
    return counts


def compose_counts(label_share, lam, mu, batch_size: int,
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """Samples per (y, g, source) in one batch: (2, 2, 2) ints, source 0 real and 1 generated.

    Label y gets S_y = label_share[y]·batch_size slots, cell (y, g) λ·μ·S_y real and λ·(1−μ)·S_y
    generated samples, all by largest remainder (ties broken by ``rng`` if given), so the counts
    sum to ``batch_size`` exactly.
    """
    label_share, lam, mu = (np.asarray(a, dtype=np.float64) for a in (label_share, lam, mu))
    label_share, lam = label_share / label_share.sum(), lam / lam.sum(1, keepdims=True)
    slots = largest_remainder(label_share * batch_size, batch_size, rng)
    counts = np.zeros((2, 2, 2), np.int64)
    for y in (0, 1):
        quotas = np.stack([lam[y] * mu[y], lam[y] * (1 - mu[y])], 1) * slots[y]  # (g, source)
        counts[y] = largest_remainder(quotas.ravel(), slots[y], rng).reshape(2, 2)
    return counts


class CellCursor:
    """Draws a cell's positions without replacement, reshuffling whenever the cell runs out."""

    def __init__(self, positions: np.ndarray, rng: np.random.Generator):
        self.positions, self.rng = positions, rng
        self.order, self.next = positions[:0], 0

    def take(self, k: int) -> np.ndarray:
        if k > 0 and not len(self.positions):
            raise ValueError("cannot draw from an empty cell")
        parts = [self.positions[:0]]
        while k > 0:
            if self.next == len(self.order):
                self.order, self.next = self.rng.permutation(self.positions), 0
            part = self.order[self.next:self.next + k]
            parts.append(part)
            self.next, k = self.next + len(part), k - len(part)
        return np.concatenate(parts)


class ComposedOrder:
    """An epoch "order" whose batches are composed only when the training loop slices them.

    ``fit`` slices ``order[start:start + batch_size]`` lazily, right before each ``update``, so a
    batch composed at slicing time follows the λ and μ of the latest update. ``len`` is the
    number of samples the epoch visits; only contiguous slices can be read.
    """

    def __init__(self, length: int, compose: Callable[[int], np.ndarray]):
        self.length, self.compose = length, compose

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("a composed epoch order is read in contiguous slices only")
        start, stop, _ = key.indices(self.length)
        return self.compose(max(stop - start, 0))


# --------------------------------------------------------------------------- fairness objectives
def cell_means(loss: torch.Tensor, y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """(2, 2) mean loss per (y, g); NaN for a cell without samples."""
    return torch.stack([loss[(y == t) & (g == k)].mean() for t, k in CELLS]).view(2, 2)


def selection_deficit(losses: torch.Tensor, cell_share: torch.Tensor) -> torch.Tensor:
    """Per group, a loss proxy for how far P(ŷ=1 | g) falls short (used for demographic parity).

    Loss on a group's positives pushes its selection rate down, loss on its negatives pushes it
    up; each is weighted by P(y | g) of the real data.
    """
    within = cell_share / cell_share.sum(0, keepdim=True)
    return within[1] * losses[1] - within[0] * losses[0]


def fairness_gap(losses: torch.Tensor, fairness: str, cell_share: torch.Tensor) -> torch.Tensor:
    """The loss gap between the groups that the chosen fairness notion cares about.

    "eo": the larger over y of |ℓ(y, 0) − ℓ(y, 1)|; "eqopp": that gap for y = 1 only;
    "dp": the gap of :func:`selection_deficit` between the groups.
    """
    if fairness == "eo":
        return (losses[:, 0] - losses[:, 1]).abs().max()
    if fairness == "eqopp":
        return (losses[1, 0] - losses[1, 1]).abs()
    deficit = selection_deficit(losses, cell_share)
    return (deficit[0] - deficit[1]).abs()


def fairbatch_targets(losses: torch.Tensor, fairness: str, cell_share: torch.Tensor) -> list:
    """The (y, g) whose λ grows this step: per adapted label, the group with the larger loss.

    For "dp", label 1 moves toward the group whose selection falls shorter and label 0 away from
    it (fewer of its negatives), both raising that group's selection rate.
    """
    if fairness == "dp":
        deficit = selection_deficit(losses, cell_share)
        if deficit[0] == deficit[1]:
            return []
        short = int(deficit[1] > deficit[0])
        return [(0, 1 - short), (1, short)]
    labels = (1,) if fairness == "eqopp" else (0, 1)
    return [(y, int(losses[y, 1] > losses[y, 0])) for y in labels if losses[y, 0] != losses[y, 1]]


def flat_gradient(value: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([d.reshape(-1) for d in torch.autograd.grad(value, params, retain_graph=True)])


def hypergradient_scores(outer: torch.Tensor, cell_losses: torch.Tensor,
                         params: list[torch.Tensor]) -> torch.Tensor:
    """s_c = ∂F/∂θ · ∇_θ ℓ_c for every cell c of ``cell_losses`` (same shape as it).

    With G = Σ_c w_c ℓ_c and the inverse Hessian replaced by the identity, the implicit function
    theorem gives dF/dw_c = −∂F/∂θ · ∂²G/∂θ∂w_c = −s_c: weight flows to the cells whose gradient
    agrees with the outer objective's.
    """
    outer_grad = flat_gradient(outer, params)
    grads = torch.stack([flat_gradient(loss, params) for loss in cell_losses.reshape(-1)])
    return (grads @ outer_grad).view(cell_losses.shape)


def split_head(model: nn.Module) -> tuple[nn.Module, nn.Linear]:
    """(the head up to its last Linear, that Linear): Dr-Fairness differentiates the last layer."""
    head = model.head
    return (nn.Identity(), head) if isinstance(head, nn.Linear) else (head[:-1], head[-1])


def sampler_logs(lam: np.ndarray, mu: np.ndarray | None) -> dict[str, float]:
    logs = {f"lambda_y{y}_g{g}": float(lam[y, g]) for y, g in CELLS}
    if mu is not None:
        logs |= {f"mu_y{y}_g{g}": float(mu[y, g]) for y, g in CELLS}
    return logs


def _cell_name(y: int, g: int) -> str:
    return f"(y={y}, g={g})"


# --------------------------------------------------------------------------- the methods
class FairSampler(Method):
    """Shared parts: per-cell positions, the composed epoch order, the trajectory and the logs.

    ``epoch_order`` returns a :class:`ComposedOrder` over as many samples as there are real
    training rows: each slice the training loop takes is composed then from the current λ, μ.
    ``self.trajectory`` holds (step, λ, μ) from step 0 (after ``setup``) on, for plotting.
    """

    uses_generated = False
    resumable = False  # λ, μ and the probe cursors are not part of the resume state

    def __init__(self, factory, params, device, hparams=None, context=None):
        super().__init__(factory, params, device, hparams, context)
        if self.hparams["fairness"] not in FAIRNESS:
            raise DebiaslabError(f"{self.name}: fairness must be one of {', '.join(FAIRNESS)}, "
                                 f"got {self.hparams['fairness']!r}")
        if "val_batch" in self.hparams and int(self.hparams["val_batch"]) < 1:  # probing methods
            raise DebiaslabError(f"{self.name}: val_batch must be a positive integer")
        self.context = context or {}
        self.rng = np.random.default_rng(params.seed)
        self.trajectory: list[tuple[int, np.ndarray, np.ndarray]] = []
        self.steps = 0

    # -- data
    def _check_labels(self, data: ArrayDataset, where: str) -> None:
        if data.g is None:
            raise DebiaslabError(f"{self.name}: {where} has no protected labels (g)")
        if data.y.ndim != 1 or not np.isin(data.y, (0, 1)).all() or not np.isin(data.g, (0, 1)).all():
            raise DebiaslabError(f"{self.name}: {where} needs one binary target y and a binary "
                                 "protected label g (0/1 per row)")

    def _cells(self, data: ArrayDataset, rows: np.ndarray, where: str) -> dict:
        """{(y, g): positions among ``rows``}, every cell non-empty."""
        cells = {}
        for y, g in CELLS:
            cells[y, g] = rows[(data.y[rows] == y) & (data.g[rows] == g)]
            if not len(cells[y, g]):
                raise DebiaslabError(f"{self.name}: no {where} samples for cell {_cell_name(y, g)}")
        return cells

    def _generated_mask(self, train: ArrayDataset) -> np.ndarray:
        return np.zeros(len(train), bool)

    def setup(self, train: ArrayDataset, *, total_steps: int) -> None:
        self._check_labels(train, "the training data")
        self.train_data = train
        generated = self._generated_mask(train)
        self.sources = {"real": self._cells(train, np.flatnonzero(~generated), "real")}
        if self.uses_generated:
            self.sources["generated"] = self._cells(train, np.flatnonzero(generated), "generated")
        counts = np.array([[len(self.sources["real"][y, g]) for g in (0, 1)] for y in (0, 1)], float)
        self.n_real = int(counts.sum())
        self.label_share = counts.sum(1) / counts.sum()
        self.cell_share = torch.as_tensor(counts / counts.sum(), dtype=torch.float32, device=self.device)
        self.init_sampler(counts / counts.sum(1, keepdims=True))
        self.trajectory = [(0, self.lam.copy(), self.mu.copy())]

    # -- sampler state, defined by the subclasses
    lam: np.ndarray
    mu: np.ndarray

    def init_sampler(self, group_share: np.ndarray) -> None:
        raise NotImplementedError

    def set_sampler(self, lam, mu=None) -> None:
        """Set λ (and μ): for tests and for resuming from a logged trajectory."""
        raise NotImplementedError

    # -- batches
    def epoch_order(self, data: ArrayDataset, generator: torch.Generator) -> ComposedOrder:
        rng = np.random.default_rng(int(torch.randint(0, 2 ** 62, (1,), generator=generator)))
        cursors = {(y, g, s): CellCursor(cells[y, g], rng)
                   for s, cells in enumerate(self.sources.values()) for y, g in CELLS}
        return ComposedOrder(self.n_real, lambda n: self.compose(n, cursors, rng))

    def compose(self, n: int, cursors: dict, rng: np.random.Generator) -> np.ndarray:
        counts = compose_counts(self.label_share, self.lam, self.mu, n, rng)
        return np.concatenate([cursors[y, g, s].take(counts[y, g, s])
                               for y, g in CELLS for s in range(2) if counts[y, g, s]])

    def probe_cursors(self, cells: dict) -> dict:
        """Cursors for the small per-cell probe batches, seeded by ``params.seed``."""
        return {cell: CellCursor(cells[cell], self.rng) for cell in CELLS}

    def probe_losses(self, data: ArrayDataset, cursors: dict) -> torch.Tensor:
        """(2, 2) mean loss per cell on ``val_batch`` samples of each, differentiable in the last
        layer only; the rest of the model runs in eval mode without gradients."""
        index = np.concatenate([cursors[cell].take(int(self.hparams["val_batch"])) for cell in CELLS])
        batch = data.batch(index, self.device, channels_last=self.params.channels_last)
        before_last, last = split_head(self.network)
        training = self.network.training
        self.network.eval()  # BatchNorm must not learn running statistics from probe batches
        try:
            with torch.no_grad(), self.autocast():
                features = before_last(self.network.embed(batch.x))
        finally:
            self.network.train(training)
        loss = per_sample_loss(last(features.float()), batch.y)
        return cell_means(loss, batch.y, batch.g)

    # -- training
    def adapt(self) -> dict[str, float]:
        """One update of the sampler; returns its scalar logs."""
        raise NotImplementedError

    @property
    def network(self) -> nn.Module:
        """The network the optimiser trains; ``self.model``, the one that predicts, unless a
        subclass keeps an average of it (Dr-Fairness's EMA)."""
        return self.model

    def after_step(self) -> None:
        """Called after every optimiser step, before the sampler adapts."""

    def update(self, batch: Batch) -> dict[str, float]:
        """One batch of plain ERM on the trained network; after every ``update_iter`` batches
        (where the method has it; 1 otherwise) one optimiser step, then one sampler update. The
        sampler's logs come with the batches that end in a step."""
        self.network.train()
        with self.autocast():
            logits = self.network(batch.x).float()
        loss = per_sample_loss(logits, batch.y).mean()
        if not self.step(loss, accumulate=int(self.hparams.get("update_iter", 1))):
            return {"loss": loss.item()}
        self.after_step()
        logs = self.adapt()
        self.steps += 1
        self.trajectory.append((self.steps, self.lam.copy(), self.mu.copy()))
        return {"loss": loss.item(), **logs,
                **sampler_logs(self.lam, self.mu if self.uses_generated else None)}


def plot_trajectory(trajectory: list, title: str, *, protected: str = "g", mu: bool = True):
    """λ (share of group 1 within each label) and, with ``mu``, μ (share of real data per cell)
    against the step; a method on real data only keeps μ at 1 and leaves its panel out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([s for s, _, _ in trajectory])
    lam = np.stack([lam for _, lam, _ in trajectory])
    real_share = np.stack([m for _, _, m in trajectory])
    fig, axes = plt.subplots(1, 2 if mu else 1, figsize=(10 if mu else 5.4, 3.4), squeeze=False)
    axes = axes[0]
    for y in (0, 1):
        axes[0].plot(steps, lam[:, y, 1], label=f"y={y}")
        for g in (0, 1) if mu else ():
            axes[1].plot(steps, real_share[:, y, g], label=f"y={y}, {protected}={g}")
    axes[0].set_title(f"λ: share of {protected}=1 within each label")
    if mu:
        axes[1].set_title("μ: share of real data in each cell")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
