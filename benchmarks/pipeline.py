"""Where the time of a pipeline run goes: each stage's compute, its start-up and DVC's bookkeeping.

Usage:
    python benchmarks/pipeline.py run [-- DVC_REPRO_ARGS...]   # runs `dvc repro`, then a no-op one
    python benchmarks/pipeline.py log repro.log --wall 2900     # reads a saved `make repro` log
    python benchmarks/pipeline.py noop --repeat 5               # a finished run: no-op repro and status

`run` timestamps every line DVC prints, so each stage's wall time is the span from its
"Running stage" line to the next stage's (its Python start-up and imports, its compute, DVC hashing
its outputs and writing dvc.lock). Its compute is what the stage itself reports
(``NAME: done in X s``, printed by :func:`debiaslab.errors.stage_main`); the difference is overhead.
A saved log has no timestamps, so `log` can only split the total wall time (``--wall``) into the
stages' compute and everything else. Then `run` times `dvc repro` again (nothing to do) and
`dvc status`; `noop` times only those two, several times, on a workspace that is up to date, and
says which YAML parser DVC gets: its files are parsed with ruamel.yaml, whose C parser (the
``ruamel.yaml.clib`` package) is several times faster than its pure-Python one.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

RUNNING = re.compile(r"Running stage '([^']+)'")
DONE = re.compile(r"^([\w@.-]+(?: [\w@.-]+)?): done in ([0-9.]+) s$")


@dataclass
class StageTime:
    name: str
    compute_s: float | None = None  # what the stage reported
    wall_s: float | None = None  # its span in the DVC output (`run` only)


def parse(lines: list[tuple[float | None, str]]) -> list[StageTime]:
    """Stages in the order DVC ran them, from (timestamp or None, line) pairs."""
    stages: list[StageTime] = []
    starts: list[float | None] = []
    for stamp, raw in lines:
        for line in raw.replace("\r", "\n").splitlines():  # tqdm writes \r-separated bars
            line = line.strip()
            if m := RUNNING.search(line):
                stages.append(StageTime(m.group(1)))
                starts.append(stamp)
            elif (m := DONE.match(line)) and stages and stages[-1].compute_s is None:
                stages[-1].compute_s = float(m.group(2))
    ends = starts[1:] + [lines[-1][0] if lines else None]
    for stage, start, end in zip(stages, starts, ends, strict=True):
        if start is not None and end is not None:
            stage.wall_s = end - start
    return stages


def run_timed(cmd: list[str]) -> tuple[float, list[tuple[float | None, str]], int]:
    """Run cmd, echo its output, and return (wall seconds, timestamped lines, exit code)."""
    start = time.perf_counter()
    lines: list[tuple[float | None, str]] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append((time.perf_counter() - start, line))
            sys.stdout.write(line)
        code = proc.wait()
    wall = time.perf_counter() - start
    lines.append((wall, ""))
    return wall, lines, code


def table(stages: list[StageTime], wall: float) -> str:
    compute = sum(s.compute_s or 0.0 for s in stages)
    rows = [f"{'stage':44s} {'wall s':>8s} {'compute s':>10s} {'overhead s':>10s}"]
    for s in sorted(stages, key=lambda s: -(s.wall_s or s.compute_s or 0.0)):
        w = f"{s.wall_s:8.1f}" if s.wall_s is not None else f"{'-':>8s}"
        c = f"{s.compute_s:10.1f}" if s.compute_s is not None else f"{'-':>10s}"
        o = (f"{s.wall_s - s.compute_s:10.1f}" if s.wall_s is not None and s.compute_s is not None
             else f"{'-':>10s}")
        rows.append(f"{s.name:44s} {w} {c} {o}")
    rows.append(f"{len(stages)} stages ran; wall {wall:.0f} s = {wall / 60:.1f} min; the stages' own "
                f"compute {compute:.0f} s ({compute / max(wall, 1e-9):.0%}); start-ups, imports and "
                f"DVC's bookkeeping {wall - compute:.0f} s")
    return "\n".join(rows)


def yaml_parser() -> str:
    """Which parser ruamel.yaml's safe loader (DVC's for dvc.yaml, dvc.lock, params.yaml) uses here."""
    from ruamel.yaml import YAML, main

    in_c = main.CParser is not None and YAML(typ="safe").Parser is main.CParser
    return "C (ruamel.yaml.clib)" if in_c else "pure Python"


def time_noop(repro_args: list[str], repeat: int) -> None:
    """Median and range of `repeat` no-op `dvc repro` and `dvc status` runs (output not echoed).
    A workspace with anything to reproduce is refused first: its `dvc repro` would run the stages."""
    if subprocess.run(["dvc", "status", "--quiet"], capture_output=True).returncode != 0:
        sys.exit("`dvc status` lists changes: reproduce the pipeline first (a no-op needs nothing to do)")
    for cmd in (["dvc", "repro", *repro_args], ["dvc", "status"]):
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            if proc.returncode != 0 or (cmd[1] == "repro" and "Running stage" in proc.stdout):
                sys.exit(f"`{' '.join(cmd)}` was not a no-op (exit {proc.returncode}): "
                         "run the pipeline first")
        print(f"`{' '.join(cmd)}`: median {statistics.median(times):.2f} s over {repeat} "
              f"(min {min(times):.2f}, max {max(times):.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    run = sub.add_parser("run", help="time `dvc repro` (extra arguments are passed on) and a no-op")
    run.add_argument("repro_args", nargs="*")
    log = sub.add_parser("log", help="read a saved log of `make repro` or `dvc repro`")
    log.add_argument("path")
    log.add_argument("--wall", type=float, required=True, help="the run's wall time in seconds")
    noop = sub.add_parser("noop", help="time a no-op `dvc repro` and `dvc status` on an up-to-date workspace")
    noop.add_argument("--repeat", type=int, default=5)
    noop.add_argument("repro_args", nargs="*")
    args = ap.parse_args()
    if args.mode == "log":
        with open(args.path, encoding="utf-8", errors="replace") as f:
            print(table(parse([(None, f.read())]), args.wall))
        return
    print(f"YAML parser of DVC's files: {yaml_parser()}")
    if args.mode == "run":
        wall, lines, code = run_timed(["dvc", "repro", *args.repro_args])
        print(table(parse(lines), wall))
        if code != 0:
            sys.exit(code)
    time_noop(args.repro_args, max(1, args.repeat) if args.mode == "noop" else 1)


if __name__ == "__main__":
    main()
