"""Data-parallel training over several processes, launched by ``torchrun``.

With ``train.nproc_per_node: N > 1`` a training stage re-executes itself under
``torchrun --standalone --nproc-per-node N`` (or a user starts it under their own multi-node
``torchrun``). Every process then

- seeds identically, so all start from the same weights (and rank 0's are broadcast anyway);
- draws the same epoch order and takes its own contiguous part of every global batch
  (``train.batch_size`` stays the global batch size, so results do not depend on N);
- averages gradients across processes after each backward pass with one all-reduce of the
  flattened gradients, and takes rank 0's BatchNorm statistics after each step.

That is what :class:`torch.nn.parallel.DistributedDataParallel` does. It is done here in
``Method.step`` rather than by wrapping the model, because methods call submodules directly
(``model.embed``/``model.head``) and some own several models and optimisers, which a DDP wrapper
would not see. Validation predictions are split into contiguous parts and gathered back in
order: every sample is scored exactly once, unlike a padded ``DistributedSampler``. Backend:
NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from . import threads


def under_torchrun() -> bool:
    """True in a process that torchrun started (it sets these variables)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def planned_world_size(nproc_per_node: int) -> int:
    """How many processes will train: torchrun's WORLD_SIZE when it started us, else the param."""
    return int(os.environ["WORLD_SIZE"]) if under_torchrun() else nproc_per_node


def relaunch_under_torchrun(nproc_per_node: int) -> None:
    """Replace this process by ``torchrun`` running the same command on ``nproc_per_node``
    processes; returns at once if that is 1 or we already run under torchrun (for several nodes,
    start the stage with your own ``torchrun --nnodes ...`` and this does nothing)."""
    if under_torchrun() and torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))  # work before init uses its own GPU
    if nproc_per_node <= 1 or under_torchrun():
        return
    threads.forget_auto_threads()  # each torchrun process chooses its own (torchrun: 1 thread)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", "--standalone",
                              f"--nproc-per-node={nproc_per_node}", *sys.argv])


def init(device: torch.device) -> torch.device:
    """Join the process group when running under torchrun; the device this process trains on
    (``cuda:LOCAL_RANK`` on a GPU node)."""
    if not under_torchrun() or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def finish() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


# This process's share of the current global batch (its samples / all samples), set by
# ArrayDataset.batches: gradients of per-process *mean* losses are weighted by it, so that uneven
# parts still give the gradient of the mean loss over the whole batch.
batch_share = 1.0


def local_part(index: np.ndarray) -> np.ndarray:
    """This process's contiguous part of ``index`` (all of it in a single process)."""
    return np.array_split(index, world_size())[rank()] if world_size() > 1 else index


def gather_parts(local: torch.Tensor, total: int) -> torch.Tensor:
    """Inverse of :func:`local_part` over ``total`` rows: every process's rows, in order."""
    if world_size() == 1:
        return local
    sizes = [len(p) for p in np.array_split(np.arange(total), world_size())]
    padded = torch.zeros((max(sizes), *local.shape[1:]), dtype=local.dtype, device=local.device)
    padded[:len(local)] = local
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([p[:n] for p, n in zip(parts, sizes, strict=True)])


def all_true(flag: bool) -> bool:
    """True only if ``flag`` is true in every process (e.g. all found the same resume file)."""
    if world_size() == 1:
        return flag
    device = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def average_gradients(optimizer: torch.optim.Optimizer) -> None:
    """The gradient of the whole batch's mean loss: Σ_r share_r · grad_r, one all-reduce for all
    parameters of ``optimizer`` (the plain mean over processes when the parts are equal)."""
    if world_size() == 1:
        return
    params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
    for p in params:  # a parameter unused this step still takes part, with a zero gradient
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params]) * batch_share
    dist.all_reduce(flat)
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset:offset + p.numel()].view_as(p.grad))
        offset += p.numel()


def broadcast_state(modules: list[nn.Module], *, buffers_only: bool = False) -> None:
    """Rank 0's parameters (unless ``buffers_only``) and buffers, e.g. BatchNorm statistics."""
    if world_size() == 1:
        return
    for module in modules:
        tensors = [*([] if buffers_only else module.parameters()), *module.buffers()]
        for t in tensors:
            dist.broadcast(t.data, src=0)
