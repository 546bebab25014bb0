import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from debiaslab.params import Correlation, SynthesizeParams
from debiaslab.profile import apply_profile
from debiaslab.synth import write_synthfaces

REPO = Path(__file__).resolve().parents[1]


def env():
    return {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
            "DVC_NO_ANALYTICS": "1",
            # one thread: results are bit-identical only at equal thread counts, and two runs
            # side by side with two OpenMP threads each on two cores stall each other
            "OMP_NUM_THREADS": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def sh(cwd, *cmd):
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def tiny_repo(root: Path) -> Path:
    for name in ("dvc.yaml", "params.yaml", ".gitignore", "profiles", "stages", "src"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    (root / "reports/paired").mkdir(parents=True)  # the report stage reads the paired tables there
    (root / "reports/paired/.gitkeep").touch()  # in git, as the real folder's tables are: a clone has it
    apply_profile(root / "profiles" / "tiny.yaml", root / "params.yaml")
    sh(root, "git", "init", "-q")
    sh(root, "dvc", "init", "-q")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "tiny")
    return root


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
