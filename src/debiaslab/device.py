"""Device, precision and seeding: the same code on a laptop CPU and a CUDA node."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from .errors import DebiaslabError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DebiaslabError(f"train.device: {name!r} is not a device (auto, cpu, cuda, cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DebiaslabError(f"train.device: {name!r} requested but CUDA is not available")
    return device


def autocast(device: torch.device, precision: str):
    """bf16 autocast where asked for; a no-op context for fp32."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; deterministic kernels so CPU reruns match bit for bit."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - for third-party code that uses the global RNG
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)
