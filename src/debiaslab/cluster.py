"""``python -m debiaslab.cluster submit``: seeded DVC experiments as jobs of a scheduler (submitit).

One job per seed, named ``NAME-seedS`` like :mod:`debiaslab.paired`'s ``queue`` (whose checks and
command building it reuses): each job runs, in the repository it was submitted from,

    dvc --wait-for-lock exp run --temp -n NAME-seedS -S train.seed=S -S latents.seed=S ... TARGET...

``--temp`` runs the experiment in a temporary copy under ``.dvc/tmp/exps`` and stores its result as
an experiment ref in the repository, so ``dvc exp show``, ``python -m debiaslab.sweep`` and
``python -m debiaslab.paired table`` read it as they read a queued one. ``--executor local`` runs
the jobs as processes on this machine (submitit's LocalExecutor: tests, a workstation);
``--executor slurm`` submits them with sbatch (one job array). Logs: ``.submitit/NAME/``.

Several ``dvc exp run --temp`` in one repository: each takes DVC's repository lock while it stashes
its setting into the workspace and again when it records the result. Without
``--wait-for-lock`` a run that finds the lock taken gives up after 3 s ("Unable to acquire lock"):
5 of 8 runs started at once failed so. With it none of 8 or 12 did. DVC still assumes one
standalone run at a time while starting (every ``--temp`` run shares one stash entry slot, taken
without waiting on its lock, and briefly rewrites params.yaml and detaches HEAD in the
workspace), so the jobs here start one at a time: a job holds ``.submitit/start.lock`` from its
check of the checkout until DVC has copied its setting into the temporary folder (the line
"Reproducing experiment NAME"); the runs themselves overlap. The lock file must be on a file
system every node shares and that supports flock (NFS does; Lustre with ``-o flock``).

Every job runs the commit it was submitted from: ``submit`` refuses a workspace with uncommitted
changes to tracked files, and a job that finds HEAD moved or the workspace changed stops before
running anything.
"""

from __future__ import annotations

import argparse
import fcntl
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from debiaslab.errors import DebiaslabError, stage_main
from debiaslab.paired import (
    add_seed_arguments,
    exp_run_commands,
    experiment_name,
    parse_seed_params,
    parse_seeds,
    split_seed_words,
)
from debiaslab.stage_args import plain_name

EXECUTORS = ("local", "slurm")
LOG_DIR = ".submitit"
START_MARK = "Reproducing experiment"  # DVC's line once the run has its own copy of the repository
SLOT_POLL_S = 2.0
SUBMITIT_LOG = re.compile(r"submitit (DEBUG|INFO|WARNING|ERROR|CRITICAL) \(")


@dataclass(frozen=True)
class Setting:
    """One job: the experiment's name and its ``dvc ...`` argument list."""

    name: str
    command: tuple[str, ...]


@dataclass(frozen=True)
class Checkout:
    """Where and from which commit the jobs run; what every job checks before it starts."""

    repo: str
    head: str
    lock_dir: str
    max_parallel: int | None = None  # local executor: jobs of this repository at once (None: all)


# ------------------------------------------------------------------------------------ settings

def settings(*, name: str, seeds: Sequence[int], seed_params: Sequence[str], set_params: Sequence[str] = (),
             targets: Sequence[str] = ()) -> list[Setting]:
    """One checked setting per seed; no targets reproduces the whole pipeline."""
    commands = exp_run_commands(name=name, seeds=seeds, seed_params=seed_params, set_params=set_params,
                                targets=targets, options=["--temp"])
    # --wait-for-lock is an option of `dvc` itself, not of `exp run`
    return [Setting(experiment_name(name, seed), (cmd[0], "--wait-for-lock", *cmd[1:]))
            for seed, cmd in zip(seeds, commands, strict=True)]


def positive_int(what: str, text: str | None, *, zero: bool = False) -> int | None:
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or (int(text) == 0 and not zero):
        raise DebiaslabError(f"{what} {text!r}: expected a {'non-negative' if zero else 'positive'} integer")
    return int(text)


def executor_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """submitit's ``update_parameters`` keywords: Slurm's resources only where given (else the
    cluster's defaults), and refused for the local executor, which cannot honour them."""
    params: dict[str, Any] = {"name": plain_name("--name", args.name),
                              "timeout_min": positive_int("--time-min", args.time_min)}
    if args.executor == "slurm":
        for key, option, text, zero in (
                ("cpus_per_task", "--cpus-per-task", args.cpus_per_task, False),
                ("gpus_per_node", "--gpus-per-node", args.gpus_per_node, True),
                ("slurm_array_parallelism", "--max-parallel", args.max_parallel, False)):
            if text is not None:
                params[key] = positive_int(option, text, zero=zero)
        if args.mem_gb is not None:
            params["mem_gb"] = _mem_gb(args.mem_gb)
        if args.partition is not None:
            params["slurm_partition"] = plain_name("--partition", args.partition)
    else:
        given = [opt for opt, v in (("--partition", args.partition), ("--cpus-per-task", args.cpus_per_task),
                                    ("--gpus-per-node", args.gpus_per_node), ("--mem-gb", args.mem_gb))
                 if v is not None]
        if given:
            raise DebiaslabError(f"{given[0]}: a Slurm option; the local executor runs on this machine "
                                 "as it is (use --executor slurm)")
    return params


def _mem_gb(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not (math.isfinite(value) and value > 0):
        raise DebiaslabError(f"--mem-gb {text!r}: expected a positive number of GB, e.g. 16")
    return value


# ------------------------------------------------------------------------------------ checkout

def _git(repo: str | Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if proc.returncode:
        raise DebiaslabError(f"{repo}: `git {' '.join(args)}` failed: "
                             f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return proc.stdout


def check_checkout(repo: str | Path, head: str | None = None) -> str:
    """HEAD of a DVC repository without uncommitted changes to tracked files (``dvc exp run
    --temp`` would carry them into the experiment), and equal to ``head`` when given."""
    if not (Path(repo) / ".dvc").is_dir():
        raise DebiaslabError(f"{repo}: not the root of a DVC repository (no .dvc folder)")
    current = _git(repo, "rev-parse", "--verify", "-q", "HEAD").strip()
    if head is not None and current != head:
        raise DebiaslabError(f"{repo}: HEAD is {current[:7]}, not the commit {head[:7]} the job was "
                             "submitted from; submit again from the new commit")
    changed = _git(repo, "status", "--porcelain", "--untracked-files=no").splitlines()
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise DebiaslabError(f"{repo}: uncommitted changes in {', '.join(c[3:] for c in changed[:3])}{more}: "
                             "commit them first (each job runs the commit it was submitted from)")
    return current


# ------------------------------------------------------------------------------------- the job

@contextmanager
def _flock(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """An exclusive flock on ``path``, held inside the block; yields False when not blocking and
    taken. The kernel drops it when the process dies, so a killed job leaves no stale lock."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def _slot(lock_dir: Path, max_parallel: int | None) -> Iterator[None]:
    """One of ``max_parallel`` slots (a free ``slot-K.lock``), waiting for one; no limit on None."""
    if max_parallel is None:
        yield
        return
    while True:
        for k in range(max_parallel):
            with _flock(lock_dir / f"slot-{k}.lock", blocking=False) as taken:
                if taken:
                    yield
                    return
        time.sleep(SLOT_POLL_S)


class _Echo:
    """Copies DVC's output into the job's log, remembering DVC's last ERROR line."""

    def __init__(self) -> None:
        self.error = ""

    def lines(self, stream, *, until: str | None = None) -> None:
        for line in stream:
            print(line, end="", flush=True)
            if line.startswith("ERROR"):
                self.error = line.strip()
            if until and line.startswith(until):
                return


def _start(checkout: Checkout, setting: Setting, echo: _Echo) -> subprocess.Popen:
    """Check the checkout and start DVC, returning once DVC has its own copy of the setting."""
    with _flock(Path(checkout.lock_dir) / "start.lock"):
        check_checkout(checkout.repo, checkout.head)
        # this interpreter's DVC (the job's environment), as argument list: no shell; unbuffered,
        # or DVC's start line would reach the pipe only when the run ends, holding the lock so long
        proc = subprocess.Popen([sys.executable, "-m", *setting.command], cwd=checkout.repo, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        # without the line DVC failed before its run started; the lock goes when it exits
        echo.lines(proc.stdout, until=START_MARK)
    return proc


def run_setting(setting: Setting, checkout: Checkout) -> str:
    """The body of one job: ``dvc exp run --temp`` for one setting; raises when it fails, so the
    scheduler marks the job failed. The last line printed is the job's one-line outcome."""
    start, echo = time.monotonic(), _Echo()
    with _slot(Path(checkout.lock_dir), checkout.max_parallel):
        try:
            proc = _start(checkout, setting, echo)
        except DebiaslabError as err:
            print(f"error: {setting.name}: {err}", flush=True)
            raise
        echo.lines(proc.stdout)
        code = proc.wait()
    if code:
        outcome = f"error: {setting.name}: dvc exited with {code}" + (f": {echo.error}" if echo.error else "")
        print(outcome, flush=True)
        raise DebiaslabError(outcome)
    outcome = f"{setting.name}: done in {time.monotonic() - start:.0f} s"
    print(outcome, flush=True)
    return outcome


# ---------------------------------------------------------------------------------- submitting

def make_executor(kind: str, folder: Path, parameters: dict[str, Any]):
    import submitit  # only where jobs are submitted: the checks above do not need it

    try:
        # one folder for all jobs of a name (files named by job id): a "%j" pattern would leave an
        # empty folder named %j behind with the local executor
        executor = submitit.AutoExecutor(folder=folder, cluster=kind)
    except RuntimeError as err:  # "Could not detect srun, are you indeed on a slurm cluster?"
        raise DebiaslabError(f"--executor {kind}: {err}") from None
    executor.update_parameters(**parameters)
    return executor


def submit_jobs(executor, items: Sequence[Setting], checkout: Checkout) -> list:
    """All settings in one batch: one Slurm job array (``--max-parallel`` its throttle)."""
    with executor.batch():
        jobs = [executor.submit(run_setting, setting, checkout) for setting in items]
    return jobs


def last_line(text: str | None) -> str:
    """The job's last line of output: submitit's own log lines ("submitit INFO (...) - ...") skipped."""
    lines = (line.strip() for line in reversed((text or "").splitlines()))
    return next((line for line in lines if line and not SUBMITIT_LOG.match(line)), "")


def job_state(job) -> str:
    """submitit's state, with FAILED for a finished job whose function raised (the local
    executor says FINISHED either way)."""
    state = job.state
    if job.done() and state in ("FINISHED", "COMPLETED"):
        try:
            failed = job.exception() is not None
        except Exception:  # noqa: BLE001 - no result file: the process died before writing one
            failed = True
        return "FAILED" if failed else "COMPLETED"
    return state


def wait_for(jobs: Sequence, items: Sequence[Setting], *, poll_s: float = 5.0) -> list[str]:
    """Wait for every job, printing name, state and last output line as each ends; the failed names."""
    import submitit

    names = {job.job_id: s.name for job, s in zip(jobs, items, strict=True)}
    failed = []
    for job in submitit.helpers.as_completed(jobs, poll_frequency=poll_s):
        state = job_state(job)
        print(f"{names[job.job_id]}\t{state}\t{last_line(job.stdout())}", flush=True)
        if state != "COMPLETED":
            failed.append(names[job.job_id])
    return failed


def submit(args: argparse.Namespace) -> None:
    seed_words, targets = split_seed_words(args.seeds, args.targets)
    items = settings(name=args.name, seeds=parse_seeds(seed_words),
                     seed_params=parse_seed_params(args.seed_params), set_params=args.set_params or [],
                     targets=targets)
    parameters = executor_parameters(args)
    max_parallel = positive_int("--max-parallel", args.max_parallel)
    repo = Path.cwd().resolve()
    head = check_checkout(repo)
    if args.dry_run:
        print(f"{args.executor} executor, {parameters}; from {head[:7]} in {repo}")
        for s in items:
            print(" ".join(s.command))
        return
    folder = repo / LOG_DIR / args.name
    folder.mkdir(parents=True, exist_ok=True)
    # Slurm throttles the array itself; local jobs take one of --max-parallel slots
    checkout = Checkout(str(repo), head, str(repo / LOG_DIR),
                        max_parallel if args.executor == "local" else None)
    jobs = submit_jobs(make_executor(args.executor, folder, parameters), items, checkout)
    for job, s in zip(jobs, items, strict=True):
        print(f"submitted {s.name}: job {job.job_id}, log {job.paths.stdout}")
    if args.wait:
        failed = wait_for(jobs, items)
        if failed:
            raise DebiaslabError(f"{len(failed)} of {len(jobs)} jobs failed ({', '.join(failed)}); "
                                 f"their logs are under {folder}")
    print(f"results: dvc exp show; python -m debiaslab.paired table --name {args.name}")


# ------------------------------------------------------------------------------------------ CLI

def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m debiaslab.cluster",
                                 description="Seeded DVC experiments as jobs of a scheduler (submitit).")
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("submit", help="one job `dvc exp run --temp -n NAME-seedS ...` per seed",
                       description="Submit one job per seed; each runs `dvc --wait-for-lock exp run --temp "
                                   "-n NAME-seedS -S P=S ... TARGET...` in this repository (committed, "
                                   "clean) and stores the experiment in it.")
    s.add_argument("--executor", required=True, choices=EXECUTORS,
                   help="local: processes on this machine; slurm: sbatch, one job array")
    add_seed_arguments(s)
    s.add_argument("--time-min", default="240",
                   help="each job's time limit in minutes (default: %(default)s)")
    s.add_argument("--max-parallel", help="jobs running at once (default: all); Slurm: the array's "
                                          "throttle; local: slots shared by this repository's jobs")
    s.add_argument("--partition", help="Slurm partition")
    s.add_argument("--cpus-per-task", help="Slurm: CPUs per job")
    s.add_argument("--gpus-per-node", help="Slurm: GPUs per job")
    s.add_argument("--mem-gb", help="Slurm: memory per job in GB")
    s.add_argument("--wait", action="store_true",
                   help="wait for the jobs; print each one's name, state and last line of output")
    s.add_argument("--dry-run", action="store_true", help="check and print the dvc commands, submit nothing")
    s.add_argument("targets", nargs="*", metavar="TARGET",
                   help="DVC stages, e.g. evaluate@baseline-Smiling (default: the whole pipeline)")
    return ap.parse_args(argv)


@stage_main("cluster")
def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    submit(args)


if __name__ == "__main__":
    # run the importable module's main, not __main__'s: submitit then pickles run_setting by
    # reference, and each job imports it from the package like any other code
    from debiaslab.cluster import main as package_main

    package_main()
