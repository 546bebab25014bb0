"""Stage pack_digits SEVERITY: decode one severity's folders once into uint8 arrays."""

import sys

from debiaslab import stage_args
from debiaslab.bias_folder import pack_bias_folder
from debiaslab.colored_digits import severity_dir
from debiaslab.errors import stage_main
from debiaslab.params import load_params

SOURCE = "data/colored_digits"


@stage_main("pack_digits")
def main(argv: list[str]) -> None:
    (severity,) = stage_args.arguments(argv, "SEVERITY")
    stage_args.severity(severity, load_params("colored_digits")["colored_digits"].severities)
    meta = pack_bias_folder(SOURCE, severity_dir(float(severity)), f"data/digits/{severity}",
                            workers=2)
    print(f"pack_digits {severity}: {meta.get('counts', meta)}")


if __name__ == "__main__":
    main(sys.argv[1:])
