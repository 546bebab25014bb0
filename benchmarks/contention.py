"""The training loop alone and beside a busy process: thread count and OpenMP wait policy.

Usage: python benchmarks/contention.py [--steps 60] [--busy 1] [--configs default,passive,auto,one]

Each configuration runs the project's training step (``make_method``, small CNN, 32 px, batch 128,
bf16 + channels_last as in params.yaml; random data) for ``--steps`` steps after a warm-up, in a
fresh Python process, since libgomp reads its settings once when torch loads it:

- default: what every stage does: torch's thread count (the machine's cores), libgomp's own wait
           (spin, then sleep).
- passive: ``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep at once), same thread count.
- auto:    ``DEBIASLAB_THREADS=auto``: as many threads as cores are free when the process starts
           (results then depend on the load; opt-in).
- one:     ``OMP_NUM_THREADS=1``.

Each runs alone, then beside ``--busy`` spinning Python processes pinned to the same CPUs
(started before the loop's process, so ``auto`` sees them, and killed after it). Prints images/s
and the ratio busy/alone for each. About 2 minutes on 2 cores with the defaults; run it on a quiet
machine (the load average is printed first).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CONFIGS = {
    "default": {},  # torch's threads (the cores), libgomp's own wait policy
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "auto": {"DEBIASLAB_THREADS": "auto"},
    "one": {"OMP_NUM_THREADS": "1"},
}
# variables that would change what a configuration means: cleared before each run
CLEARED = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
           "DEBIASLAB_THREADS", "DEBIASLAB_THREADS_CHOSEN")
SPIN = "while True:\n    pass\n"


def worker(args) -> None:
    """One timed loop in this process; prints one JSON line."""
    import debiaslab  # noqa: F401, I001 - first: sets the OpenMP environment before torch loads
    import torch
    from train_throughput import throughput  # the same timed loop (this script's folder is on sys.path)

    from debiaslab.params import TrainParams

    ips = throughput(args.arch, args.size, TrainParams.precision, TrainParams.channels_last, args.steps,
                     args.batch_size, args.width)
    seconds = args.steps * args.batch_size / ips
    print(json.dumps({"ips": args.steps * args.batch_size / seconds, "seconds": seconds,
                      "threads": torch.get_num_threads(),
                      "wait": os.environ.get("OMP_WAIT_POLICY")
                      or f"spin {os.environ.get('GOMP_SPINCOUNT', 'default')}"}))


def start_busy(count: int, cpus: set[int]) -> list[subprocess.Popen]:
    procs = []
    for _ in range(count):
        p = subprocess.Popen([sys.executable, "-c", SPIN])
        os.sched_setaffinity(p.pid, cpus)
        procs.append(p)
    time.sleep(0.5)  # let them reach the loop (and show up in /proc/stat for auto)
    return procs


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def run(config: str, busy: int, args, cpus: set[int]) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(CONFIGS[config])
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--steps", str(args.steps),
           "--arch", args.arch, "--size", str(args.size), "--batch-size", str(args.batch_size),
           "--width", str(args.width)]
    procs = start_busy(busy, cpus) if busy else []
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    finally:
        stop(procs)
    if out.returncode != 0:
        sys.exit(f"{config} (busy {busy}) failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60, help="timed steps per run (after 3 warm-up)")
    ap.add_argument("--busy", type=int, default=1, help="spinning processes beside the loop")
    ap.add_argument("--configs", default="default,passive,auto,one",
                    help=f"comma-separated, from: {', '.join(CONFIGS)}")
    ap.add_argument("--arch", default="small_cnn")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--timeout", type=float, default=600, help="seconds per run at most")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if unknown := [c for c in configs if c not in CONFIGS]:
        ap.error(f"unknown configs {unknown} (valid: {', '.join(CONFIGS)})")
    cpus = os.sched_getaffinity(0)
    load = os.getloadavg()
    print(f"{args.arch} (width {args.width}) at {args.size}px, batch {args.batch_size}, "
          f"{args.steps} steps; {len(cpus)} CPUs, {args.busy} busy process(es) beside; "
          f"loadavg {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (quiet machine: near 0)")
    rows, start = [], time.perf_counter()
    for config in configs:
        alone = run(config, 0, args, cpus)
        beside = run(config, args.busy, args, cpus)
        rows.append((config, alone, beside))
    print("\n| config | wait | threads alone / busy | alone img/s | busy img/s | busy/alone |")
    print("|---|---|---|---|---|---|")
    for config, alone, beside in rows:
        print(f"| {config} | {alone['wait']} | {alone['threads']} / {beside['threads']} | "
              f"{alone['ips']:,.0f} | {beside['ips']:,.0f} | {beside['ips'] / alone['ips']:.2f} |")
    print(f"\n{time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
