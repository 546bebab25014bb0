"""Stage check_params: params.yaml is valid and safe before any other stage runs (its stamp is a
dependency of every stage); without --stamp, the guard that starts every stage's command."""

from debiaslab.check_params import main

if __name__ == "__main__":
    main()
