"""Apply a params profile: ``python -m debiaslab.profile tiny`` merges profiles/tiny.yaml into
params.yaml (validated first, written atomically), so the same DAG runs at another scale."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from .errors import DebiaslabError
from .io import write_text
from .params import merge_overrides, read_params_file, validate_all


def apply_profile(profile: str | Path, params_path: str | Path = "params.yaml") -> dict:
    profile = Path(profile)
    if not profile.suffix:
        profile = Path("profiles") / f"{profile}.yaml"
    merged = merge_overrides(read_params_file(params_path), read_params_file(profile))
    tmp = Path(params_path).with_suffix(".check.yaml")
    try:
        tmp.write_text(yaml.safe_dump(merged, sort_keys=False))
        validate_all(tmp)
    finally:
        tmp.unlink(missing_ok=True)
    write_text(params_path, yaml.safe_dump(merged, sort_keys=False))
    return merged


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
