"""``python -m debiaslab.changes``: which metrics changed, and by how much, as one short table.

By default it compares the workspace's metrics with HEAD's (after a ``dvc repro`` of uncommitted
edits: what the edits changed); where they are equal, HEAD~1's with HEAD's (what the last commit
changed). ``--a-rev`` / ``--b-rev`` name the two sides instead (``--b-rev B`` alone: B~1 against B;
``--a-rev A`` alone: A against the workspace). The numbers come from ``dvc metrics diff --json``.
Only changed metrics are listed, grouped by metrics file, the largest |change| first, at most
the :data:`LIMIT` largest over all files unless ``--all`` (ranked by |change|, relative to the value
where that is beyond ±1: counts, epochs). The table goes to the terminal and to reports/changes.md.

This is not a pipeline stage on purpose: a stage's output must depend only on its dependencies,
and this one depends on git's history and the workspace. reports/changes.md is ignored by git.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import re
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import DebiaslabError, stage_main
from .io import write_text
from .report import Table, is_number, markdown_table
from .summary import table as text_table

OUT = Path("reports/changes.md")
LIMIT = 40  # changes shown without --all: the largest ones
ABSENT = "—"  # a metric the revision does not have (added or removed), or a change that is no number
REV_NAME = re.compile(r"[A-Za-z0-9_./~^-]+")
HEADER = ["file", "metric", "old", "new", "change"]
TITLE = "What changed in the metrics"


@dataclass(frozen=True)
class Rev:
    name: str          # as given: HEAD, HEAD~1, a branch or tag, a commit hash
    sha: str | None    # the commit; None for the workspace

    @property
    def label(self) -> str:
        if self.sha is None:
            return "workspace"
        return self.name if self.sha.startswith(self.name) else f"{self.name} ({self.sha[:7]})"


WORKSPACE = Rev("workspace", None)


@dataclass(frozen=True)
class Change:
    file: str
    metric: str
    old: object  # None: the metric is absent on that side
    new: object

    @property
    def delta(self) -> float | None:
        """new − old when both are finite numbers, else None."""
        if not (is_number(self.old) and is_number(self.new)):
            return None
        d = self.new - self.old
        return d if math.isfinite(d) else None


def same(a, b) -> bool:
    """Equal values; NaN equals NaN, and true is not 1."""
    if is_number(a) and is_number(b):
        return a == b or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


# ----------------------------------------------------------------------------- git and DVC
def check_rev(option: str, rev: str) -> str:
    """A revision name that can go into an argument list: only [A-Za-z0-9_./~^-], no leading '-'."""
    if not REV_NAME.fullmatch(rev) or rev.startswith("-"):
        raise DebiaslabError(f"{option} {rev!r}: not a revision name (expected letters, digits and "
                             "_ . / ~ ^ -, not starting with '-'; e.g. HEAD~1, main, a commit hash)")
    return rev


def git(*args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True)
    except FileNotFoundError:
        raise DebiaslabError("git not found on PATH; the changes are read from git's commits") from None


def check_repository() -> None:
    """The current folder is inside a git work tree and a DVC repository within it."""
    proc = git("rev-parse", "--show-toplevel")
    if proc.returncode:
        raise DebiaslabError(f"{Path.cwd()}: not inside a git work tree; the changes compare the "
                             "metrics of git commits (run it in the repository)")
    top, here = Path(proc.stdout.strip()).resolve(), Path.cwd().resolve()
    if not any((d / ".dvc").is_dir() for d in (here, *here.parents) if d.is_relative_to(top)):
        raise DebiaslabError(f"{here}: not inside a DVC repository (no .dvc folder up to the git root "
                             f"{top}); run it in the repository")


def find_commit(name: str) -> Rev | None:
    """The commit ``name`` names, or None where there is none (no commit yet, no HEAD~1)."""
    proc = git("rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
    return Rev(name, proc.stdout.strip()) if proc.returncode == 0 else None


def resolve(option: str, name: str) -> Rev:
    rev = find_commit(name)
    if rev is None:
        raise DebiaslabError(f"{option} {name!r}: not a commit of this git repository")
    return rev


def metrics_diff(a: Rev, b: Rev) -> list[Change]:
    """``dvc metrics diff --json`` of a against b (b may be the workspace), with this interpreter's
    DVC, as an argument list (no shell)."""
    if importlib.util.find_spec("dvc") is None:
        raise DebiaslabError(f"DVC is not installed for {sys.executable} (run `make setup`)")
    cmd = ["dvc", "metrics", "diff", "--json", a.sha, *([b.sha] if b.sha else [])]
    proc = subprocess.run([sys.executable, "-m", *cmd], capture_output=True, text=True)
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1].removeprefix("ERROR: ")
        raise DebiaslabError(f"`dvc metrics diff` of {a.label} and {b.label} failed: {last}")
    try:
        return parse_diff(json.loads(proc.stdout or "{}"))
    except json.JSONDecodeError as err:
        raise DebiaslabError(f"`{' '.join(cmd)}` printed no JSON ({err.msg})") from None


def parse_diff(data) -> list[Change]:
    """``{file: {metric: {old, new, diff}}}`` as changes; entries whose value is the same are dropped."""
    if not isinstance(data, dict) or not all(isinstance(m, dict) for m in data.values()):
        raise DebiaslabError("dvc metrics diff: expected {file: {metric: {old, new}}} in its JSON")
    changes = []
    for file, metrics in data.items():
        for metric, entry in metrics.items():
            if not isinstance(entry, dict):
                raise DebiaslabError(f"dvc metrics diff: {file}: {metric}: expected {{old, new}}")
            old, new = entry.get("old"), entry.get("new")
            if not same(old, new):
                changes.append(Change(file, metric, old, new))
    return changes


# ----------------------------------------------------------------------------- what to compare
Comparison = tuple[Rev, Rev, list[Change]]


def default_comparison() -> Comparison | str:
    """Workspace against HEAD; where nothing changed, HEAD~1 against HEAD. A string: the one line to
    say instead, when there is nothing earlier to compare with."""
    head = find_commit("HEAD")
    if head is None:
        return "no commit yet: nothing to compare the metrics with"
    changes = metrics_diff(head, WORKSPACE)
    if changes:
        return head, WORKSPACE, changes
    parent = find_commit("HEAD~1")
    if parent is None:
        return f"no previous commit: {head.label} is the first, and the workspace's metrics equal it"
    return parent, head, metrics_diff(parent, head)


def chosen_comparison(a_rev: str | None, b_rev: str | None) -> Comparison | str:
    """--a-rev A --b-rev B: A against B; --a-rev A: A against the workspace; --b-rev B: B~1 against B."""
    b = WORKSPACE if b_rev is None else resolve("--b-rev", b_rev)
    if a_rev is not None:
        a = resolve("--a-rev", a_rev)
    else:
        a = find_commit(f"{b_rev}~1")
        if a is None:
            return f"no previous commit: {b.label} is the first"
    return a, b, metrics_diff(a, b)


# ----------------------------------------------------------------------------- the table
def size(c: Change, relative: bool = False) -> float | None:
    """|change|; ``relative``: divided by the larger |value| where that is beyond 1, so that a count's
    change of 100 (or an epoch's of 1) does not crowd an accuracy's change of 0.1 out of the limit."""
    d = c.delta
    if d is None:
        return None
    return abs(d) / max(1.0, abs(c.old), abs(c.new)) if relative else abs(d)


def order(magnitude: float | None, metric: str) -> tuple:
    """Largest magnitude first; then added, removed or non-numeric values; ties by name."""
    return (0, -magnitude, metric) if magnitude is not None else (1, 0.0, metric)


def select(changes: list[Change], limit: int | None) -> list[Change]:
    """The ``limit`` largest changes over all files (relative beyond 1; every one when None), grouped
    by file, the largest |change| first within a file."""
    largest = sorted(changes, key=lambda c: (order(size(c, relative=True), c.metric), c.file))[:limit]
    return sorted(largest, key=lambda c: (c.file, order(size(c), c.metric)))


def value_text(x) -> str:
    if x is None:
        return ABSENT
    if isinstance(x, float):
        return f"{x:.6g}"
    text = x if isinstance(x, str) else json.dumps(x)
    return text if len(text) <= 40 else text[:37] + "..."


def change_text(c: Change) -> str:
    d = c.delta
    if d is None:
        return ABSENT
    return f"{d:+d}" if isinstance(d, int) else f"{d:+.4g}"


def rows(changes: list[Change]) -> list[list[str]]:
    return [[c.file, c.metric, value_text(c.old), value_text(c.new), change_text(c)] for c in changes]


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def summary_line(a: Rev, b: Rev, changes: list[Change], shown: int) -> str:
    if not changes:
        return f"{a.label} → {b.label}: no metric changed."
    files = len({c.file for c in changes})
    line = f"{a.label} → {b.label}: {plural(len(changes), 'metric')} changed in {plural(files, 'file')}"
    if shown < len(changes):
        line += f"; the {shown} largest are shown (|change|, relative beyond ±1; --all: every one)"
    return line + "."


NOTE = (f"From `dvc metrics diff`. Within a file the largest |change| comes first; {ABSENT} means absent "
        "in that revision (the metric was added or removed), or a change that is not a number.")


def render_markdown(summary: str, table_rows: list[list[str]]) -> str:
    out = [f"# {TITLE}", "", summary, ""]
    if table_rows:
        out += [markdown_table(Table("", HEADER, table_rows)), "", f"*{NOTE}*", ""]
    out += ["Written by `python -m debiaslab.changes` (not a pipeline stage: it describes the workspace "
            "and git's history, not a result).", ""]
    return "\n".join(out)


def render_text(summary: str, table_rows: list[list[str]]) -> str:
    if not table_rows:
        return summary
    return f"{summary}\n{text_table(HEADER, table_rows)}\n{textwrap.fill(NOTE, 100)}"


# ----------------------------------------------------------------------------- command line
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m debiaslab.changes",
        description="The metrics that changed (dvc metrics diff), largest change first; prints the "
                    f"table and writes {OUT}. Default: the workspace against HEAD, or HEAD~1 against "
                    "HEAD when the workspace's metrics equal HEAD's.")
    ap.add_argument("--a-rev", help="the old side: a commit, branch or tag (default: HEAD, or HEAD~1)")
    ap.add_argument("--b-rev", help="the new side (default: the workspace; --b-rev alone: its parent "
                                    "against it)")
    ap.add_argument("--all", action="store_true", help=f"every changed metric, not only the {LIMIT} "
                                                       "largest changes")
    return ap.parse_args(argv)


@stage_main("changes")
def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    a_rev = None if args.a_rev is None else check_rev("--a-rev", args.a_rev)
    b_rev = None if args.b_rev is None else check_rev("--b-rev", args.b_rev)
    check_repository()
    found = default_comparison() if a_rev is None and b_rev is None else chosen_comparison(a_rev, b_rev)
    if isinstance(found, str):
        write_text(OUT, render_markdown(found, []))
        print(found)
        return
    a, b, changes = found
    shown = select(changes, None if args.all else LIMIT)
    summary = summary_line(a, b, changes, len(shown))
    write_text(OUT, render_markdown(summary, rows(shown)))
    print(render_text(summary, rows(shown)))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
