"""debiaslab: measure and mitigate bias in image classifiers."""

import os
import sys

from . import threads as _threads

__version__ = "0.1.0"

# With DEBIASLAB_THREADS=auto the thread count must be in the
# environment before torch loads libgomp; every stage script imports debiaslab before torch.
_threads.configure()


def _one_line_interrupt(hook):
    """Ctrl-C while a stage is still importing torch (seconds) ends with one line, not an import
    traceback; other exceptions go to the previous hook unchanged."""

    def excepthook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            stage = os.path.splitext(os.path.basename(sys.argv[0]))[0] or "python"
            print(f"error: {stage}: interrupted", file=sys.stderr)
        else:
            hook(exc_type, exc, tb)

    return excepthook


if sys.excepthook is sys.__excepthook__:  # leave IPython's or a user's own hook alone
    sys.excepthook = _one_line_interrupt(sys.excepthook)
