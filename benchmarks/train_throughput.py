"""Training throughput of the project's loop: fp32 vs bf16 autocast, NCHW vs channels_last.

Usage: python benchmarks/train_throughput.py [--arch small_cnn] [--size 32] [--steps 60]
Prints images/s for each configuration on random data (the loop itself, not data loading).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from debiaslab.data import ArrayDataset
from debiaslab.params import TrainParams
from debiaslab.train import make_method


def throughput(arch: str, size: int, precision: str, channels_last: bool, steps: int,
               batch_size: int, width: int) -> float:
    torch.manual_seed(0)
    params = TrainParams(arch=arch, precision=precision, channels_last=channels_last,
                         batch_size=batch_size, width=width)
    method = make_method("erm", 1, params, torch.device("cpu"))
    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.integers(0, 256, (batch_size * 8, size, size, 3), dtype=np.uint8),
                        rng.integers(0, 2, batch_size * 8))
    batches = list(data.batches(batch_size, method.device, channels_last=channels_last))
    for b in batches[:3]:  # warm-up: oneDNN picks kernels on first use
        method.update(b)
    start = time.perf_counter()
    for i in range(steps):
        method.update(batches[i % len(batches)])
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="small_cnn")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--width", type=int, default=TrainParams.width)
    args = ap.parse_args()
    print(f"{args.arch} (width {args.width}) at {args.size}px, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    base = None
    for precision in ("fp32", "bf16"):
        for channels_last in (False, True):
            ips = throughput(args.arch, args.size, precision, channels_last, args.steps,
                             args.batch_size, args.width)
            base = base or ips
            layout = "channels_last" if channels_last else "NCHW"
            print(f"  {precision:5s} {layout:14s} {ips:8.0f} img/s  ({ips / base:.2f}x)")


if __name__ == "__main__":
    main()
