import numpy as np
import pytest
from PIL import Image

from debiaslab.celeba import read_celeba
from debiaslab.errors import DebiaslabError
from debiaslab.params import Correlation, SynthesizeParams
from debiaslab.synth import (
    RENDERED_ATTRIBUTES,
    Nuisance,
    check_correlations,
    mouth_bends,
    render_batch,
    render_settings,
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


def test_mouth_bends_are_uniform_or_normal_as_asked():
    uniform = mouth_bends(np.random.default_rng(0), 20000, 1.5, "uniform")
    assert uniform.min() >= -1.5 and uniform.max() <= 1.5
    assert uniform.std() == pytest.approx(1.5 / 3 ** 0.5, rel=0.02)
    normal = mouth_bends(np.random.default_rng(0), 20000, 4.0, "normal")
    assert normal.std() == pytest.approx(4.0, rel=0.02) and abs(normal.mean()) < 0.1
    with pytest.raises(ValueError, match="mouth_spread: expected one of uniform, normal, got 'cauchy'"):
        mouth_bends(np.random.default_rng(0), 3, 1.0, "cauchy")
    with pytest.raises(ValueError, match="mouth_spread"):
        render_settings({"smile_depth": 1, "mouth_jitter": 1, "mouth_spread": "cauchy", "mouth_thickness": 2,
                         "noise_std": 0})


def test_a_deep_smile_is_drawn_whole():
    """The mouth's lowest point (v = 21 + bend at its centre) is painted in lip colour even where
    it lies far below the default setting's mouth region."""
    n, depth = 6, 20.0
    attrs = {k: np.zeros(n, np.int8) for k in RENDERED_ATTRIBUTES}
    attrs["Smiling"][:] = 1
    kw = {"smile_depth": depth, "mouth_jitter": 0.0, "noise_std": 0.0, "mouth_spread": "normal",
          "mouth_thickness": 5.0}
    faces = render_batch(attrs, np.random.default_rng(3), **kw).astype(int)
    nz = Nuisance.sample(n, attrs["Pale_Skin"], attrs["Blond_Hair"], np.random.default_rng(3), 0.0, "normal")
    rows = np.round(nz.cy + (21 + depth) * nz.scale).astype(int)
    lips = faces[np.arange(n), rows, np.round(nz.cx).astype(int)]
    np.testing.assert_allclose(lips, np.tile([150, 50, 55], (n, 1)), atol=2)
    # and not two pixels of line thickness further down
    below = faces[np.arange(n), rows + np.ceil(5.0 * nz.scale).astype(int), np.round(nz.cx).astype(int)]
    assert np.abs(below - [150, 50, 55]).sum(1).min() > 30


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
