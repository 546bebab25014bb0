"""Atomic writes: every output appears whole or not at all.

Each writer writes to a temporary sibling and renames it into place, so a killed stage never
leaves a half-written file that a later stage (or DVC) would take for a result.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

UMASK = os.umask(0o022)
os.umask(UMASK)  # read once at import: the permissions a plain open() would give new files


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    prefix = f".{path.name}.tmp-{os.getpid()}-"
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=path.parent, suffix=path.suffix)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        tmp.chmod(0o777 & ~UMASK if directory else 0o666 & ~UMASK)  # mkstemp/mkdtemp give 0600/0700
        if directory and path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(path: Path) -> None:
    """Remove what a killed writer of ``path`` left behind (``.NAME.tmp-PID-*`` whose process is
    gone): a SIGKILL skips the clean-up below, and a packed dataset's leftover can be gigabytes."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
        pid = tmp.name.removeprefix(f".{path.name}.tmp-").split("-")[0]
        if pid.isdigit() and _alive(int(pid)):
            continue  # a writer still running (another process of a data-parallel run, say)
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_figure(fig, path: str | os.PathLike, **kwargs) -> None:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", **kwargs)
    plt.close(fig)


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """torch.save, atomically and byte-reproducibly: saved to a file *handle*, the archive's
    internal folder is a fixed name, not the (random) temporary file name, so the same weights
    always give the same bytes and DVC sees no change when a stage reruns."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
