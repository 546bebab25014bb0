"""One exception type for every input a user can get wrong, and the stage wrapper that reports it.

A stage that fails on bad input prints a single line naming the file, key or value and what was
expected, then exits non-zero. Tracebacks are for bugs, not for a mistyped attribute name.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
import time
import traceback
from collections.abc import Callable

# The machine's answer to a write, not a bug: a read-only output folder, a full disk, no permission.
FILE_SYSTEM_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


class DebiaslabError(Exception):
    """A problem with the user's data or parameters; its message is the whole report."""


def stage_main(name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Wrap a stage's ``main``: one-line errors with exit code 2, and the stage's wall time."""

    def decorate(main: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(main)
        def run(*args, **kwargs) -> None:
            start = time.perf_counter()
            try:
                main(*args, **kwargs)
            except DebiaslabError as err:
                print(f"error: {name}: {err}", file=sys.stderr)
                sys.exit(2)
            except KeyboardInterrupt:
                print(f"error: {name}: interrupted", file=sys.stderr)
                sys.exit(130)
            except OSError as err:
                if err.errno not in FILE_SYSTEM_ERRORS:
                    _exit_with_traceback()
                print(f"error: {name}: {err.filename or ''}: {err.strerror} "
                      "(check the folder's permissions and free space)", file=sys.stderr)
                sys.exit(2)
            except Exception:  # noqa: BLE001 - a bug: its traceback, then exit at once
                _exit_with_traceback()
            print(f"{name}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr)

        return run

    return decorate


def _exit_with_traceback() -> None:
    """Print the traceback and leave without interpreter shutdown: objects the traceback keeps
    alive (DVCLive's git repository) would otherwise add 'Exception ignored ... sys.meta_path is
    None' noise under it. Outputs are already safe: every writer cleaned up while unwinding."""
    traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)
