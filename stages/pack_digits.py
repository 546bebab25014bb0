"""Stage pack_digits SEVERITY: decode one severity's folders once into uint8 arrays."""

import sys

from debiaslab.bias_folder import pack_bias_folder
from debiaslab.colored_digits import severity_dir
from debiaslab.errors import stage_main

SOURCE = "data/colored_digits"


@stage_main("pack_digits")
def main(severity: str) -> None:
    meta = pack_bias_folder(SOURCE, severity_dir(float(severity)), f"data/digits/{severity}",
                            workers=2)
    print(f"pack_digits {severity}: {meta.get('counts', meta)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python stages/pack_digits.py SEVERITY")
    main(sys.argv[1])
