"""Latent edits against their defining constraints, on random hyperplanes and latents."""

import numpy as np
import pytest

from debiaslab import latent_space as L
from debiaslab.errors import DebiaslabError
from debiaslab.latent_space import Hyperplane

DIMS = pytest.mark.parametrize("d", [16, 512])


def plane(rng, d, name="", w=None) -> Hyperplane:
    w = rng.normal(size=d) if w is None else np.asarray(w, dtype=np.float64)
    return Hyperplane(w / np.linalg.norm(w), rng.normal(), name=name)


def latents(rng, d, n=300, dtype=np.float64):
    return rng.normal(size=(n, d)).astype(dtype)


def close(a, b, tol=1e-9):
    np.testing.assert_allclose(a, b, rtol=0, atol=tol)


def in_span(delta, normals):
    """Every row of delta is a combination of the normals (the min-norm optimality condition)."""
    coef, *_ = np.linalg.lstsq(normals.T, delta.T, rcond=None)
    close(normals.T @ coef, delta.T, 1e-8)


@DIMS
def test_complementary_keeps_target_and_negates_protected(d):
    rng = np.random.default_rng(d)
    t, g, z = plane(rng, d), plane(rng, d), latents(rng, d)
    zc = L.complementary_latents(z, t, g)
    close(zc @ t.w, z @ t.w)
    close(g.score(zc), -g.score(z))
    in_span(zc - z, np.stack([t.w, g.w]))


@DIMS
def test_closed_form_agrees_with_min_norm_edit(d):
    rng = np.random.default_rng(d + 1)
    t, g, z = plane(rng, d), plane(rng, d), latents(rng, d)
    targets = np.column_stack([z @ t.w, -g.score(z) - g.b])
    close(L.complementary_latents(z, t, g), L.min_norm_edit(z, np.stack([t.w, g.w]), targets))


def test_min_norm_edit_is_the_nearest_feasible_point():
    rng = np.random.default_rng(2)
    d, k = 16, 3
    z, normals = latents(rng, d, n=50), rng.normal(size=(k, d))
    targets = rng.normal(size=(50, k))
    zp = L.min_norm_edit(z, normals, targets)
    close(zp @ normals.T, targets)
    in_span(zp - z, normals)
    free = rng.normal(size=(50, d))  # any other feasible point: zp + a direction orthogonal to the normals
    free -= free @ np.linalg.pinv(normals) @ normals
    assert (np.linalg.norm(zp + free - z, axis=1) > np.linalg.norm(zp - z, axis=1)).all()
    shared = L.min_norm_edit(z, normals, targets[0])  # (k,) targets are broadcast to every row
    close(shared @ normals.T, np.broadcast_to(targets[0], (50, k)))


@DIMS
def test_domain_dependent_swaps_group_target_hyperplanes(d):
    rng = np.random.default_rng(d + 3)
    t0, t1, g, z = plane(rng, d), plane(rng, d), plane(rng, d), latents(rng, d)
    g_hat = (g.score(z) > 0).astype(int)
    assert 0 < g_hat.sum() < len(g_hat)
    zp = L.domain_dependent_latents(z, g_hat, (t0, t1), g)
    close(g.score(zp), -g.score(z))
    own = np.where(g_hat == 1, t1.score(z), t0.score(z))
    other_after = np.where(g_hat == 1, t0.score(zp), t1.score(zp))
    close(other_after, own)
    for group, other in ((0, t1), (1, t0)):
        rows = g_hat == group
        in_span(zp[rows] - z[rows], np.stack([g.w, other.w]))


@DIMS
def test_multi_protected_flips_each_attribute_and_keeps_the_rest(d):
    rng = np.random.default_rng(d + 4)
    t, g1, g2, z = plane(rng, d), plane(rng, d), plane(rng, d), latents(rng, d)
    edits = L.multi_protected_latents(z, t, g1, g2)
    assert set(edits) == {"flip_g1", "flip_g2", "flip_both"}
    for key, (s1, s2) in {"flip_g1": (-1, 1), "flip_g2": (1, -1), "flip_both": (-1, -1)}.items():
        zp = edits[key]
        close(t.score(zp), t.score(z))
        close(g1.score(zp), s1 * g1.score(z))
        close(g2.score(zp), s2 * g2.score(z))
        in_span(zp - z, np.stack([t.w, g1.w, g2.w]))


def test_reflect_and_project_ablations():
    rng = np.random.default_rng(5)
    t, g, z = plane(rng, 16), plane(rng, 16), latents(rng, 16)
    s = g.score(z)
    zr, zp = L.reflect_latents(z, g), L.project_latents(z, g)
    close(zr, z - 2 * s[:, None] * g.w)
    close(zp, z - s[:, None] * g.w)
    close(g.score(zr), -s)
    close(g.score(zp), np.zeros_like(s))
    close(L.reflect_latents(zr, g), z)  # an involution
    assert not np.allclose(t.score(zr), t.score(z))  # unlike the paper's edit, the target score moves


def test_near_parallel_hyperplanes_are_refused_with_a_one_line_message():
    rng = np.random.default_rng(6)
    w = rng.normal(size=16)
    t = plane(rng, 16, "Smiling", w)
    g = plane(rng, 16, "Male", w + 0.05 * rng.normal(size=16))
    z = latents(rng, 16)
    with pytest.raises(DebiaslabError, match=r"'Smiling' and protected 'Male'.*nearly parallel") as err:
        L.complementary_latents(z, t, g)
    assert "\n" not in str(err.value)
    with pytest.raises(DebiaslabError, match="nearly linearly dependent.*'Smiling'"):
        L.edit_latents("multi", z, t=t, g=plane(rng, 16, "Young"), g2=g)
    assert abs(L.check_not_parallel(t, g, max_cos=0.9999)) > 0.95


def test_min_norm_edit_refuses_dependent_normals_naming_them():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(2, 16))
    normals = np.stack([a, b, a + b])  # pairwise far from parallel, jointly dependent
    with pytest.raises(DebiaslabError, match="hyperplanes t, g1, g2 are nearly linearly dependent"):
        L.min_norm_edit(latents(rng, 16), normals, np.zeros(3), names=["t", "g1", "g2"])


def test_fit_hyperplane_rejects_one_class_and_rare_minority():
    rng = np.random.default_rng(8)
    z = latents(rng, 16, n=100)
    with pytest.raises(DebiaslabError, match=r"labels of Smiling contain only class 1 \(n=100\)"):
        L.fit_hyperplane(z, np.ones(100, int), name="Smiling")
    rare = np.zeros(100, int)
    rare[:3] = 1  # 3 positives cannot give 2 to both the fit and the held-out part
    with pytest.raises(DebiaslabError, match="Male have only 3 of class 1"):
        L.fit_hyperplane(z, rare, name="Male")
    with pytest.raises(DebiaslabError, match=r"in \{0, 1\}"):
        L.fit_hyperplane(z, np.full(100, 2), name="Male")


def planted(seed, n=3000, d=32, noise=0.05):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    true = Hyperplane(w / np.linalg.norm(w), 0.3)  # ~60 % positives; 5 % of labels flipped
    z = latents(rng, d, n=n, dtype=np.float32)
    labels = (true.score(z) > 0) ^ (rng.random(n) < noise)
    return z, labels.astype(int), true


def test_fit_hyperplane_recovers_a_planted_hyperplane():
    z, labels, true = planted(9)
    h = L.fit_hyperplane(z, labels, name="planted")
    assert h.w @ true.w > 0.9 and h.accuracy > 0.9
    assert np.linalg.norm(h.w) == pytest.approx(1) and h.n_fit == 3000 and h.name == "planted"  # all fitted
    assert abs(h.b - true.b) < 0.3


def test_fit_hyperplane_is_deterministic():
    z, labels, _ = planted(10, n=1000)
    a, b = (L.fit_hyperplane(z, labels, name="x", seed=3) for _ in range(2))
    assert np.array_equal(a.w, b.w) and a.b == b.b and a.accuracy == b.accuracy


def test_float32_in_float32_out_for_every_variant(monkeypatch):
    monkeypatch.setattr(L, "_CHUNK", 7)  # several chunks, including a ragged last one
    rng = np.random.default_rng(11)
    d = 64
    t, g, g2, t0, t1 = (plane(rng, d) for _ in range(5))
    z = latents(rng, d, n=100, dtype=np.float32)
    g_hat = (g.score(z) > 0).astype(int)
    for variant in L.VARIANTS:
        edits = L.edit_latents(variant, z, t=t, g=g, g_hat=g_hat, t_by_group=(t0, t1), g2=g2)
        assert set(edits) == ({"flip_g1", "flip_g2", "flip_both"} if variant == "multi" else {"flip"})
        for zp in edits.values():
            assert zp.dtype == np.float32 and zp.shape == z.shape
    zp = L.complementary_latents(z, t, g)
    close(t.score(zp), t.score(z), 1e-4)
    close(g.score(zp), -g.score(z), 1e-4)
    monkeypatch.setattr(L, "_CHUNK", 8192)
    close(L.complementary_latents(z, t, g), zp, 0)  # chunking changes nothing


def test_edit_latents_reports_unknown_variant_and_missing_inputs():
    rng = np.random.default_rng(12)
    t, g, z = plane(rng, 16), plane(rng, 16), latents(rng, 16)
    with pytest.raises(DebiaslabError, match="valid: standard, domain_dependent, multi, reflect, project"):
        L.edit_latents("flip", z, t=t, g=g)
    with pytest.raises(DebiaslabError, match="needs g_hat, t_by_group"):
        L.edit_latents("domain_dependent", z, t=t, g=g)
    with pytest.raises(DebiaslabError, match="needs g2"):
        L.edit_latents("multi", z, t=t, g=g)
    with pytest.raises(DebiaslabError, match="latents have 16 dims but hyperplane 'Male' has 8"):
        L.edit_latents("standard", z, t=t, g=plane(rng, 8, "Male"))


def test_hyperplane_needs_a_unit_normal_and_is_read_only():
    with pytest.raises(DebiaslabError, match="unit-norm"):
        Hyperplane(np.array([3.0, 4.0]), 0.0)
    h = Hyperplane(np.array([0.6, 0.8]), 1)
    assert isinstance(h.b, float)
    with pytest.raises(ValueError):
        h.w[0] = 1.0
