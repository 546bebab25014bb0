"""GAN training throughput (one discriminator and one generator update per batch): fp32 vs bf16.

Usage: python benchmarks/gan_throughput.py [--size 32] [--images 4096] [--batch-size 64]
Prints training images/s of `debiaslab.gan.train_gan` (channels_last) on random data.
"""

from __future__ import annotations

import argparse
import time
import types

import numpy as np
import torch

from debiaslab.gan import train_gan
from debiaslab.params import GanParams


def throughput(images: np.ndarray, precision: str, batch_size: int) -> float:
    params = types.SimpleNamespace(**{**vars(GanParams()), "epochs": 1, "batch_size": batch_size,
                                      "precision": precision})
    warm = images[:batch_size * 3]  # oneDNN picks its kernels on first use
    train_gan(warm, params, device=torch.device("cpu"), generator=torch.Generator().manual_seed(0),
              progress=False)
    start = time.perf_counter()
    train_gan(images, params, device=torch.device("cpu"), generator=torch.Generator().manual_seed(0),
              progress=False)
    return len(images) // batch_size * batch_size / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--batch-size", type=int, default=GanParams.batch_size)
    args = ap.parse_args()
    images = np.random.default_rng(0).integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8)
    print(f"DCGAN (defaults of params.GanParams) at {args.size}px, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    base = None
    for precision in ("fp32", "bf16"):
        ips = throughput(images, precision, args.batch_size)
        base = base or ips
        print(f"  {precision:5s} channels_last {ips:8.0f} img/s  ({ips / base:.2f}x)")


if __name__ == "__main__":
    main()
