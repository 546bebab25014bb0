"""One exception type for every input a user can get wrong, and the stage wrapper that reports it.

A stage that fails on bad input prints a single line naming the file, key or value and what was
expected, then exits non-zero. Tracebacks are for bugs, not for a mistyped attribute name.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable


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
            print(f"{name}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr)

        return run

    return decorate
