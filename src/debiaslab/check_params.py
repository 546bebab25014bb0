"""The pipeline's first stage and the guard in front of every stage command: params.yaml is valid,
and every value that dvc.yaml interpolates is harmless where DVC puts it.

Why a stage of its own: DVC substitutes ``${...}`` into each stage's shell command and output
paths, and removes a stage's outputs before running it, all before any code of ours runs. A check
inside a stage is too late: a protected attribute named ``Eyeglasses;touch x`` would run ``touch``,
and one made of ``../`` segments would make DVC delete files outside the repository. So
``check_params`` is upstream of every stage (each depends on its stamp file): ``dvc repro`` and
``dvc exp run`` run it first, and a failure stops the run before any other command runs or any
output is removed. Each stage's command also starts with ``${guard}``, this same check, so a
command never reaches the shell text after it with bad params, even under ``dvc repro -s``.

Rules, for every ``${name}`` in dvc.yaml that refers to params.yaml (loop variables such as
``${item}`` inherit the rule of the list they iterate over):

- a value used only among a stage's ``deps`` (``data.root``) is a path DVC reads: any text without
  control characters, and it must exist unless a stage writes it or into it (``gen_data.root``'s
  default, data/generated, holds several stages' outputs);
- any other value (commands, outputs, ``foreach``/``matrix`` lists) must be a plain name:
  letters, digits and ``_ . + -``, not starting with ``.`` or ``-``; numbers and booleans pass.

Run by hand with ``python -m debiaslab.check_params``. It imports no torch: it runs in a fraction
of a second before every stage.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from .errors import DebiaslabError
from .io import write_text
from .params import read_params_file, validate_all
from .stage_args import PLAIN_NAME, PLAIN_NAME_RULE

SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: dvc.yaml parses 10x faster
REFERENCE = re.compile(r"\$\{\s*([^}]*?)\s*\}")
LOOP_VARIABLES = ("item", "key")
STAMP_TEXT = "params.yaml passed debiaslab.check_params\n"


def dvc_references(node: Any, context: str = "") -> Iterator[tuple[str, str]]:
    """(reference, context) for each ``${...}`` in dvc.yaml; context is the key above it that
    decides how DVC uses the value: ``deps`` (read), anything else (command, output, loop)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from dvc_references(value, context if key == "do" else str(key))
            yield from dvc_references(key, context)  # `- ${x}/file: {cache: false}` keys are paths
    elif isinstance(node, list):
        for value in node:
            yield from dvc_references(value, context)
    elif isinstance(node, str):
        for match in REFERENCE.finditer(node):
            yield match.group(1), context


def lookup(params: dict, name: str) -> tuple[bool, Any]:
    node: Any = params
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def leaves(value: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every scalar (and every mapping key, which ``${key}`` can name) under ``value``."""
    if isinstance(value, dict):
        for key, sub in value.items():
            yield f"{where} (key)", key
            yield from leaves(sub, f"{where}.{key}")
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from leaves(sub, f"{where}[{i}]")
    else:
        yield where, value


def check_name(where: str, value: Any, params_path: str) -> None:
    if value is None or isinstance(value, bool | int | float):
        return  # DVC writes these as digits, '.', 'e', '-', 'inf', 'True', 'None': never shell syntax
    if not isinstance(value, str) or not PLAIN_NAME.fullmatch(value):
        raise DebiaslabError(
            f"{params_path}: {where}: {value!r} is not a plain name (dvc.yaml puts it into stage "
            f"commands and output paths, so: {PLAIN_NAME_RULE})")


def check_read_path(where: str, value: Any, params_path: str, written: set[str]) -> None:
    if not isinstance(value, str) or not value or any(ord(c) < 32 for c in value):
        raise DebiaslabError(f"{params_path}: {where}: expected a folder path, got {value!r}")
    path = os.path.normpath(value)
    if path in written or any(w.startswith(path + os.sep) for w in written) or Path(value).exists():
        return  # a stage writes it, or writes into it (data/generated), or it is there
    raise DebiaslabError(f"{params_path}: {where}: {value}: not found, and no stage in dvc.yaml "
                         "writes it (point it at an existing folder)")


def stage_outputs(stages: dict) -> set[str]:
    """Literal output paths of dvc.yaml's stages (those a later stage may read as data)."""
    out = set()
    for stage in stages.values():
        for entry in stage.get("outs", []) if isinstance(stage, dict) else []:
            path = next(iter(entry)) if isinstance(entry, dict) else entry
            if isinstance(path, str) and "${" not in path:
                out.add(os.path.normpath(path))
    return out


def check_interpolations(params: dict, dvc_yaml: dict, params_path: str = "params.yaml") -> None:
    """Every params value dvc.yaml interpolates, checked by where DVC uses it (module docstring)."""
    own_vars = {k for entry in dvc_yaml.get("vars", []) if isinstance(entry, dict) for k in entry}
    written = stage_outputs(dvc_yaml.get("stages", {}))
    uses: dict[str, set[str]] = {}
    for name, context in dvc_references(dvc_yaml):
        if name.split(".")[0] not in (*LOOP_VARIABLES, *own_vars):
            uses.setdefault(name, set()).add(context)
    for name, contexts in sorted(uses.items()):
        found, value = lookup(params, name)
        if not found:
            raise DebiaslabError(f"{params_path}: {name}: missing (dvc.yaml refers to it)")
        if contexts == {"deps"}:
            check_read_path(name, value, params_path, written)
        else:
            for where, leaf in leaves(value, name):
                check_name(where, leaf, params_path)


def read_dvc_yaml(path: str | Path = "dvc.yaml") -> dict:
    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise DebiaslabError(f"{path}: cannot read ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise DebiaslabError(f"{path}: expected a mapping with a 'stages' key")
    return data


def check(params_path: str | Path = "params.yaml", dvc_path: str | Path = "dvc.yaml") -> None:
    """Safety first (values that reach commands and paths), then the full schema."""
    check_interpolations(read_params_file(params_path), read_dvc_yaml(dvc_path), str(params_path))
    validate_all(params_path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Check params.yaml before any stage runs.")
    ap.add_argument("--stamp", help="write this file when the check passes (the DVC stage's output)")
    args = ap.parse_args(argv)
    try:
        check()
        if args.stamp:
            write_text(args.stamp, STAMP_TEXT)
    except DebiaslabError as err:
        print(f"error: check_params: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
