"""Apply a params profile: ``python -m debiaslab.profile tiny`` merges profiles/tiny.yaml into
params.yaml (validated first, written atomically), so the same DAG runs at another scale.

The edit is a round trip through ruamel.yaml, as ``dvc exp run -S`` does: comments, key order, blank
lines and flow style (``[Smiling]``, ``{q: 0.7, ...}``) stay; only the values the profile names
change. The one layout change: a flow collection written over several lines is joined onto one.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.representer import RoundTripRepresenter

from .errors import DebiaslabError
from .io import atomic_path
from .params import read_params_file, validate_all


class _Representer(RoundTripRepresenter):
    """ruamel's round trip writes None as an empty value; params.yaml spells it ``null``."""


# On a subclass: the representer table of ruamel (and DVC, in the same process) stays as it is.
_Representer.add_representer(
    type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))


def _round_trip() -> YAML:
    rt = YAML()  # round-trip mode: keeps comments, order, flow style, scalar spelling
    rt.preserve_quotes = True
    rt.width = 4096  # never fold a long value or line
    rt.Representer = _Representer
    return rt


def _load(rt: YAML, path: Path) -> CommentedMap:
    read_params_file(path)  # PyYAML's view first: the same one-line errors as every stage gives
    try:
        doc = rt.load(path.read_text())
    except YAMLError as err:  # what PyYAML reads but ruamel (YAML 1.2) refuses
        raise DebiaslabError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    return doc


def merge_in_place(base: CommentedMap, overrides: Mapping) -> None:
    """:func:`debiaslab.params.merge_overrides`, applied to the loaded document itself, so that every
    key the profile does not name keeps its comments and layout."""
    for key, value in overrides.items():
        old = base.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            merge_in_place(old, value)
        elif isinstance(value, list) and isinstance(old, CommentedSeq):
            old[:] = value  # the same sequence object keeps its flow style and end-of-line comment
        else:
            base[key] = value


def profile_path(profile: str | Path) -> Path:
    """A bare name (``tiny``) is profiles/tiny.yaml; anything with a suffix is a file path."""
    profile = Path(profile)
    return profile if profile.suffix else Path("profiles") / f"{profile}.yaml"


def apply_profile(profile: str | Path, params_path: str | Path = "params.yaml") -> dict:
    """Merge ``profile`` into ``params_path``; returns the merged parameters as plain data. The
    merged file is validated as the temporary file it is written to, before that is renamed into
    place: a profile that breaks a value leaves ``params_path`` untouched and no file behind."""
    profile, params_path = profile_path(profile), Path(params_path)
    rt = _round_trip()
    doc = _load(rt, params_path)
    merge_in_place(doc, _load(rt, profile))
    out = io.StringIO()
    rt.dump(doc, out)
    with atomic_path(params_path) as tmp:
        tmp.write_text(out.getvalue())
        try:
            validate_all(tmp)
        except DebiaslabError as err:  # name the inputs, not the temporary file
            detail = str(err).removeprefix(f"{tmp}: ")
            raise DebiaslabError(f"{profile} applied to {params_path}: {detail}") from None
    return yaml.safe_load(out.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("profile", help="a name under profiles/ (e.g. tiny) or a YAML file")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    try:
        apply_profile(args.profile, args.params)
    except DebiaslabError as err:
        print(f"error: profile: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"applied {args.profile} to {args.params}")


if __name__ == "__main__":
    main()
