"""The command-line arguments of the stage scripts, checked inside the stage's ``stage_main``.

dvc.yaml calls each stage with fixed words and ``${item}`` values; run by hand, a missing
argument, a typo or a non-number gets the same one-line error as a bad param, e.g.
``error: pack_digits: severity 'abc': expected a number (one of colored_digits.severities: 0.5, 1.0)``
instead of a traceback. Torch-free, like :mod:`debiaslab.params`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from .errors import DebiaslabError
from .params import CELEBA_ATTRIBUTES, GROUPS

# A name that can stand in a shell command and be one folder of a path: dvc.yaml puts such names
# (attribute names, methods, severities) into both, and so do stage arguments.
PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")
PLAIN_NAME_RULE = "letters, digits and _ . + -, not starting with . or -, at most 128 characters"


def arguments(argv: Sequence[str], names: str, *, optional: int = 0) -> list[str]:
    """``argv`` as a list, checked to hold one value for each word of ``names`` ("METHOD TARGET");
    the last ``optional`` words ("[bias_ensemble]") may be left out."""
    expected = names.split()
    least = len(expected) - optional
    if not least <= len(argv) <= len(expected):
        got = f"{len(argv)} ({' '.join(map(repr, argv))})" if argv else "none"
        count = f"{least} to {len(expected)}" if optional else str(len(expected))
        raise DebiaslabError(f"expected {count} argument{'s' if len(expected) > 1 else ''} "
                             f"({names}), got {got}")
    return list(argv)


def choice(what: str, value: str, choices: Iterable[str], source: str = "") -> str:
    """``value`` if it is one of ``choices``; ``source`` names where they come from."""
    choices = list(choices)
    if value not in choices:
        listed = f"{source}: {', '.join(choices)}" if source else ", ".join(choices)
        raise DebiaslabError(f"{what} {value!r}: expected one of {listed}")
    return value


def attribute(what: str, value: str) -> str:
    """A CelebA attribute name (whether the data has it is checked where the data is read)."""
    if value not in CELEBA_ATTRIBUTES:
        raise DebiaslabError(f"{what} {value!r}: unknown attribute (valid: {', '.join(CELEBA_ATTRIBUTES)})")
    return value


def target(value: str, targets: Sequence[str]) -> str:
    """One of ``attributes.targets``: only those have the generated data and models a stage reads."""
    return choice("target", value, targets, "attributes.targets")


def listed_number(what: str, value: str, values: Sequence[float], key: str) -> str:
    """A number of the params list ``key``, returned as written: it names folders, as DVC writes
    the list's ``${item}`` as params.yaml has it (1 or 1.0)."""
    listed = f"one of {key}: " + ", ".join(map(str, values))
    try:
        number = float(value)
    except ValueError:
        raise DebiaslabError(f"{what} {value!r}: expected a number ({listed})") from None
    if not math.isfinite(number) or number not in values:
        raise DebiaslabError(f"{what} {value!r}: expected {listed}")
    return value


def severity(value: str, severities: Sequence[float]) -> str:
    """A Colored Digits severity of ``colored_digits.severities``, as written (it names folders)."""
    return listed_number("severity", value, severities, "colored_digits.severities")


def group(what: str, value: str, schema: type) -> str:
    """The name of a params.yaml group of the dataclass ``schema`` (e.g. a TrainParams group)."""
    return choice(what, value, [name for name, s in GROUPS.items() if s is schema])


def plain_name(what: str, value: str) -> str:
    """A single folder name for outputs: no path separators, not ``.`` or ``..``."""
    if not PLAIN_NAME.fullmatch(value):
        raise DebiaslabError(f"{what} {value!r}: expected a plain name ({PLAIN_NAME_RULE})")
    return value
