"""Stage synthesize: render SynthFaces into data/synthfaces in CelebA's format."""

import numpy as np

from debiaslab.errors import stage_main
from debiaslab.io import write_json
from debiaslab.params import load_params
from debiaslab.synth import check_correlations, write_synthfaces

OUT = "data/synthfaces"


@stage_main("synthesize")
def main() -> None:
    params = load_params("synthesize")["synthesize"]
    check_correlations(params.correlations)
    stats = write_synthfaces(OUT, params)
    # The skew actually realised in the written labels, per (target, protected) pair.
    from debiaslab.celeba import read_celeba

    index = read_celeba(OUT)
    realised = {}
    for target, corr in params.correlations.items():
        t, g = index.column(target), index.column(corr.protected)
        realised[f"{target}|{corr.protected}"] = round(float(np.mean(t == g)), 4)
    write_json("metrics/synthesize.json", {**stats, "realised_skew": realised})
    print(f"synthesize: {stats['n_images']} images at {stats['images_per_second']} img/s")


if __name__ == "__main__":
    main()
