"""Stage colored_digits: render Colored Digits in the BiasEnsemble/DisEnt folder layout."""

from debiaslab.colored_digits import write_colored_digits
from debiaslab.errors import stage_main
from debiaslab.io import write_json
from debiaslab.params import load_params

OUT = "data/colored_digits"


@stage_main("colored_digits")
def main() -> None:
    p = load_params("colored_digits")["colored_digits"]
    stats = write_colored_digits(OUT, severities=p.severities, n_train=p.n_train,
                                 n_valid=p.n_valid, n_test=p.n_test, seed=p.seed,
                                 workers=p.workers)
    write_json("metrics/colored_digits.json", stats)
    print(f"colored_digits: {stats['n_images']} images")


if __name__ == "__main__":
    main()
