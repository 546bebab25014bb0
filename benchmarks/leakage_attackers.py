"""The leakage attackers trained one at a time against all at once (``leakage.train_attackers``).

Usage: python benchmarks/leakage_attackers.py [--tasks 12] [--rows 7000] [--epochs 30] [--threads 1]

The default sizes are the leakage stage's: a natural-leakage curve of 6 flip probabilities × 2
rounds = 12 attackers, about 7,000 protected-balanced training rows of 10 labels each (the
8,000-row cap), 2,000 val and 2,000 test rows, 30 epochs of batch 256, on ``--threads``
threads (1 was the attackers' setting before they were stacked; the stages now use torch's
count, 2 on 2 cores). Random data with a planted signal; prints each way's seconds, the speed-up
and whether both give the same test accuracies. Run it on a quiet machine.

Measured on 2 cores (Intel, idle): 1 thread: 90.3 s one at a time, 79.0 s all at once (1.1x);
2 threads: 64.2 s and 44.5 s (1.4x); 11 of 12 test accuracies equal, the twelfth 0.0005 apart
(floating-point rounding of the batched products).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from debiaslab import leakage as L


def make_tasks(n_tasks: int, rows: int, d: int, seed: int = 0) -> list[tuple]:
    rng = np.random.default_rng(seed)
    tasks = []
    for _ in range(n_tasks):
        n = rows + 4000
        g = rng.integers(0, 2, n)
        x = rng.integers(0, 2, (n, d))
        x[:, 0] = np.where(rng.random(n) < 0.8, g, 1 - g)  # one label that leaks g
        tasks.append((x[:rows], g[:rows], x[rows:rows + 2000], g[rows:rows + 2000],
                      x[rows + 2000:], g[rows + 2000:]))
    return tasks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=12)
    ap.add_argument("--rows", type=int, default=7000)
    ap.add_argument("--labels", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    tasks = make_tasks(args.tasks, args.rows, args.labels)
    seeds = list(range(args.tasks))
    options = {"epochs": args.epochs, "batch_size": 256, "lr": 1e-3, "num_threads": args.threads}
    start = time.perf_counter()
    alone = [L.train_attacker(*task, seed=seed, **options) for task, seed in zip(tasks, seeds, strict=True)]
    one_by_one = time.perf_counter() - start
    start = time.perf_counter()
    together = L.train_attackers(tasks, seeds=seeds, **options)
    stacked = time.perf_counter() - start
    print(f"{args.tasks} attackers, {args.rows} training rows of {args.labels} labels, {args.epochs} epochs, "
          f"{args.threads} thread(s)")
    print(f"one at a time: {one_by_one:.1f} s; all at once: {stacked:.1f} s; "
          f"speed-up {one_by_one / stacked:.1f}x")
    same = sum(a == b for a, b in zip(alone, together, strict=True))
    print(f"test accuracies equal in {same} of {args.tasks} (largest difference "
          f"{max(abs(a - b) for a, b in zip(alone, together, strict=True)):.4f})")


if __name__ == "__main__":
    main()
