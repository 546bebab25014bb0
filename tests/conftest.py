import shutil
from pathlib import Path

import pytest

from debiaslab.params import Correlation, SynthesizeParams
from debiaslab.synth import write_synthfaces

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def synthfaces_dir(tmp_path_factory) -> Path:
    """A small SynthFaces folder in CelebA's format, rendered once per session (read-only)."""
    out = tmp_path_factory.mktemp("synth") / "synthfaces"
    params = SynthesizeParams(n_images=60, workers=1, seed=3,
                              correlations={"Smiling": Correlation("Eyeglasses", 0.9)})
    write_synthfaces(out, params, progress=False)
    return out


@pytest.fixture
def celeba_copy(synthfaces_dir, tmp_path) -> Path:
    """A writable copy of the small CelebA-format folder, for tests that corrupt it."""
    dst = tmp_path / "celeba"
    shutil.copytree(synthfaces_dir, dst)
    return dst
