"""CPU threads for a process, chosen before torch loads: an opt-in for machines shared with others.

torch's CPU wheel runs its intra-op threads on GNU OpenMP (libgomp), as many as the machine has
cores. Each parallel operation waits for its slowest thread, so when another process holds one of
the cores the whole loop runs at the pace of the thread that keeps being descheduled: with one
busy process beside it on 2 cores, ``train_gan`` took 1,500 s instead of 258 s, and the training
step of ``benchmarks/contention.py`` falls to about a quarter of its speed alone, while one thread
fewer keeps about two thirds. libgomp's wait policy is not the cause: ``OMP_WAIT_POLICY=PASSIVE``
barely helps the busy case and slows the quiet one, so it is left at libgomp's default. (The
benchmark's numbers are in the README, section Speed; they are not repeated here.)

The thread count, however, changes how reductions are split and therefore the last bits of the
results, and "same params, same metrics on CPU, bit for bit" holds at a given thread count. So it
is not changed by default. ``DEBIASLAB_THREADS=auto`` opts in: :func:`configure` (run by
``import debiaslab``, which every stage script does before anything imports torch) then sets
``OMP_NUM_THREADS`` to the cores not busy with other processes (:func:`threads_for_load`, from a
quarter-second /proc/stat sample), unless the user set ``OMP_NUM_THREADS`` or
``MKL_NUM_THREADS``. Faster on a shared machine; a run on a busy machine then no longer reproduces
one on a quiet machine bit for bit. (A fixed ``OMP_NUM_THREADS=1`` for every process of a
``dvc queue start -j 2`` is the reproducible alternative.)

libgomp reads these variables once, when torch loads it, so :func:`configure` must run before
``import torch``; later it still sets them for child processes but cannot change this one.
This module imports nothing beyond the standard library.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, MutableMapping

AUTO = "auto"
_SAMPLE_S = 0.25  # how long auto mode watches the cores before choosing (once per process)


def threads_for_load(cores: int, busy: float) -> int:
    """Intra-op threads for ``cores`` usable cores of which others keep ``busy`` (in cores) busy.

    A core counts as taken when other processes use at least half of it: threads = cores minus
    ``busy`` rounded half up, at least 1. So 2 cores with a spinning process beside give 1 thread;
    0.4 cores of background noise leaves 2.
    """
    taken = int(max(busy, 0.0) + 0.5)
    return max(1, cores - taken)


def allowed_cpus() -> list[int]:
    """The CPU numbers this process may run on (its affinity mask; all CPUs where the platform
    has no ``sched_getaffinity``)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def usable_cores(cpus: Iterable[int] | None = None, sys_root: str = "/sys/devices/system/cpu") -> int:
    """Physical cores among ``cpus`` (default: :func:`allowed_cpus`); hyperthreads of one core
    count once (torch's default counts physical cores too). Falls back to the number of CPUs
    where the topology files cannot be read."""
    cpus = sorted(allowed_cpus() if cpus is None else cpus)
    cores = set()
    for cpu in cpus:
        base = f"{sys_root}/cpu{cpu}/topology"
        try:
            with open(f"{base}/physical_package_id") as pkg, open(f"{base}/core_id") as core:
                cores.add((pkg.read().strip(), core.read().strip()))
        except OSError:
            return max(1, len(cpus))
    return max(1, len(cores))


def read_cpu_times(stat_text: str) -> dict[int, tuple[int, int]]:
    """{cpu number: (busy jiffies, total jiffies)} from the text of /proc/stat; idle and iowait
    count as not busy, guest time is already inside user time."""
    times = {}
    for line in stat_text.splitlines():
        name, *fields = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit()):
            continue
        values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        total = sum(values)
        times[int(name[3:])] = (total - idle, total)
    return times


def busy_cores(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]],
               cpus: Iterable[int]) -> float:
    """How many of ``cpus`` were busy between two /proc/stat readings (0.0 to len(cpus))."""
    busy = 0.0
    for cpu in cpus:
        if cpu in before and cpu in after:
            d_busy = after[cpu][0] - before[cpu][0]
            d_total = after[cpu][1] - before[cpu][1]
            if d_total > 0:
                busy += min(max(d_busy / d_total, 0.0), 1.0)
    return busy


def sample_busy_cores(cpus: Iterable[int], seconds: float = _SAMPLE_S) -> float | None:
    """Cores of ``cpus`` that other processes keep busy, from /proc/stat over ``seconds`` (this
    process sleeps meanwhile, so the load is theirs); None where /proc/stat cannot be read."""
    try:
        with open("/proc/stat") as f:
            before = read_cpu_times(f.read())
        time.sleep(seconds)
        with open("/proc/stat") as f:
            after = read_cpu_times(f.read())
    except (OSError, ValueError):
        return None
    return busy_cores(before, after, cpus)


def configure(environ: MutableMapping[str, str] | None = None, *, busy=sample_busy_cores,
              cores=usable_cores) -> dict[str, str]:
    """Set the thread count described in the module docstring in ``environ`` (default
    ``os.environ``), never overriding one the user set; return the ones set here.

    ``busy`` (called with the CPU numbers, returns busy cores or None) and ``cores`` (called with
    the CPU numbers) are the measurements, replaceable in tests.
    """
    env = os.environ if environ is None else environ
    chosen = {}
    mode = env.get("DEBIASLAB_THREADS", "").strip().lower()
    if mode not in ("", AUTO):
        print(f"debiaslab: DEBIASLAB_THREADS={env['DEBIASLAB_THREADS']!r} ignored (only 'auto'; "
              "for a fixed count set OMP_NUM_THREADS)", file=sys.stderr)
    elif mode == AUTO and "OMP_NUM_THREADS" not in env and "MKL_NUM_THREADS" not in env:
        cpus = allowed_cpus()
        load = busy(cpus)
        n = cores(cpus)
        if load is not None:
            n = threads_for_load(n, load)
        chosen["OMP_NUM_THREADS"] = str(n)
        chosen["DEBIASLAB_THREADS_CHOSEN"] = str(n)  # marks OMP_NUM_THREADS as ours, not the user's
        load_text = "unknown" if load is None else f"{load:.1f}"
        print(f"debiaslab: DEBIASLAB_THREADS=auto: {n} thread{'s' if n != 1 else ''} "
              f"(busy cores: {load_text} of {len(cpus)} CPUs)", file=sys.stderr)
    env.update(chosen)
    return chosen


def forget_auto_threads(environ: MutableMapping[str, str] | None = None) -> None:
    """Drop an ``OMP_NUM_THREADS`` that auto mode chose (not one the user set), so a process that
    starts several others (torchrun) lets them choose their own."""
    env = os.environ if environ is None else environ
    if env.get("DEBIASLAB_THREADS_CHOSEN") is not None:
        if env.get("OMP_NUM_THREADS") == env["DEBIASLAB_THREADS_CHOSEN"]:
            del env["OMP_NUM_THREADS"]
        del env["DEBIASLAB_THREADS_CHOSEN"]
