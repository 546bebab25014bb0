"""Stage faces_bias: SynthFaces as a BFFHQ-like bias benchmark (target and bias attribute,
aligned where they agree), from the prepared splits, in the packed bias-set layout."""

from debiaslab.bias_experiment import write_bias_set
from debiaslab.data import PreparedSplit
from debiaslab.errors import stage_main
from debiaslab.params import load_params

PREPARED, OUT = "data/prepared", "data/faces_bias"


@stage_main("faces_bias")
def main() -> None:
    p = load_params("faces_bias")["faces_bias"]
    splits = {}
    for ours, theirs in (("train", "train"), ("valid", "val"), ("test", "test")):
        s = PreparedSplit(PREPARED, theirs)
        splits[ours] = (s.images, s.label(p.target), s.label(p.bias))
    write_bias_set(OUT, splits)
    conflict = {k: round(float((v[1] != v[2]).mean()), 4) for k, v in splits.items()}
    print(f"faces_bias: {p.target} vs {p.bias}, conflicting share {conflict}")


if __name__ == "__main__":
    main()
