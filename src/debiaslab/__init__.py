"""debiaslab: measure and mitigate bias in image classifiers."""

__version__ = "0.1.0"
