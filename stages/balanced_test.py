"""Stage balanced_test: a SynthFaces test split with balanced_test.per_cell faces in every
(target, protected) cell, in data/prepared's layout, beside the (skewed) test split.

The skewed test split has few faces in its minority cells, so DEO's interval is wide; equal cells
narrow it. Real data cannot be rendered: with balanced_test.enabled = false the folder holds only
a marker (disabled.json), and evaluate reports the test split alone.
"""

import time

import numpy as np

from debiaslab.errors import stage_main
from debiaslab.oracle import render_balanced, write_balanced_disabled, write_balanced_split
from debiaslab.params import load_params

OUT = "data/balanced_test"


@stage_main("balanced_test")
def main() -> None:
    params = load_params("balanced_test", "synthesize", "prepare", "attributes")
    p, synth = params["balanced_test"], params["synthesize"]
    if not p.enabled:
        write_balanced_disabled(OUT)
        print("balanced_test: disabled (real data cannot be rendered); evaluate uses the test split alone")
        return
    target, protected = params["attributes"].targets[0], params["attributes"].protected[0]
    size = params["prepare"].image_size
    start = time.perf_counter()
    # refuses attributes SynthFaces does not draw (real data), naming balanced_test.enabled
    images, labels = render_balanced(p.per_cell, synth, target=target, protected=protected,
                                     image_size=size, seed=p.seed, workers=synth.workers)
    seconds = time.perf_counter() - start  # printed only: the outputs must be the same bytes on a rerun
    cells = {f"{target}={t},{protected}={g}": int(np.sum((labels[target] == t) & (labels[protected] == g)))
             for t in (0, 1) for g in (0, 1)}
    write_balanced_split(OUT, images, labels, meta={
        "source": "SynthFaces render (balanced_test)", "image_size": size, "target": target,
        "protected": protected, "per_cell": p.per_cell, "seed": p.seed, "counts": {"test": len(images)},
        "cells": cells})
    print(f"balanced_test: {len(images)} faces at {size}px in {seconds:.1f} s, cells {cells}")


if __name__ == "__main__":
    main()
