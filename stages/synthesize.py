"""Stage synthesize: render SynthFaces into data/synthfaces in CelebA's format."""

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
    write_json("metrics/synthesize.json", stats)
    print(f"synthesize: {stats['n_images']} images")


if __name__ == "__main__":
    main()
