import numpy as np
import pytest
from PIL import Image

from debiaslab.celeba import read_celeba
from debiaslab.errors import DebiaslabError
from debiaslab.params import Correlation, SynthesizeParams
from debiaslab.synth import (
    RENDERED_ATTRIBUTES,
    check_correlations,
    render_batch,
    sample_attributes,
    write_synthfaces,
)


def test_requested_skew_is_realised():
    corr = {"Smiling": Correlation("Eyeglasses", 0.8), "Bangs": Correlation("Eyeglasses", 0.3)}
    a = sample_attributes(40000, corr, base_rate=0.5, rng=np.random.default_rng(0))
    for target, c in corr.items():
        t, g = a[target], a[c.protected]
        assert g[t == 1].mean() == pytest.approx(c.skew, abs=0.01)  # P(g=1 | t=1)
        assert 1 - g[t == 0].mean() == pytest.approx(c.skew, abs=0.01)  # P(g=0 | t=0)
    assert abs(np.mean(a["Wearing_Hat"] == a["Eyeglasses"]) - 0.5) < 0.01  # independent


def test_bad_correlations_are_rejected():
    with pytest.raises(DebiaslabError, match="'Male' is not rendered"):
        check_correlations({"Smiling": Correlation("Male", 0.9)})
    with pytest.raises(DebiaslabError, match="chains are not supported"):
        check_correlations({"Smiling": Correlation("Eyeglasses", 0.9),
                            "Eyeglasses": Correlation("Bangs", 0.9)})


def test_attributes_change_the_pixels_they_should():
    """Switching one attribute on changes pixels only inside its region (same nuisance seed)."""
    n = 4
    base = {k: np.zeros(n, np.int8) for k in RENDERED_ATTRIBUTES}
    kw = {"smile_depth": 2.5, "mouth_jitter": 0.0, "noise_std": 0.0}
    plain = render_batch(base, np.random.default_rng(1), **kw).astype(int)
    glasses = render_batch({**base, "Eyeglasses": np.ones(n, np.int8)},
                           np.random.default_rng(1), **kw).astype(int)
    changed = np.abs(glasses - plain).sum(-1) > 0
    rows = np.flatnonzero(changed.any((0, 2)))
    assert changed.sum() > 200 * n  # glasses are salient
    assert 90 <= rows.min() and rows.max() <= 140  # around the eyes only


def test_output_is_celeba_format_and_independent_of_workers(tmp_path):
    params = dict(n_images=70, seed=5, correlations={"Smiling": Correlation("Eyeglasses", 0.9)})
    stats = write_synthfaces(tmp_path / "a", SynthesizeParams(workers=1, **params), progress=False)
    write_synthfaces(tmp_path / "b", SynthesizeParams(workers=2, **params), progress=False)
    lines = (tmp_path / "a" / "list_attr_celeba.txt").read_text().splitlines()
    assert lines[0] == "70" and lines[1].split() == sorted(RENDERED_ATTRIBUTES)
    assert lines[2].split()[0] == "000001.jpg" and set(lines[2].split()[1:]) <= {"1", "-1"}
    part = (tmp_path / "a" / "list_eval_partition.txt").read_text().split()
    assert part[:2] == ["000001.jpg", "0"] and part[-1] == "2"
    with Image.open(tmp_path / "a" / "img_align_celeba" / "000070.jpg") as img:
        assert img.size == (178, 218)
    for name in ("list_attr_celeba.txt", "img_align_celeba/000033.jpg"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    index = read_celeba(tmp_path / "a")
    assert len(index.split_indices("train")) == 56 and len(index.split_indices("test")) == 7
    # the reported skew is the one in the written label file
    written = np.mean(index.column("Smiling") == index.column("Eyeglasses"))
    assert stats["realised_skew"] == {"Smiling|Eyeglasses": round(float(written), 4)}
