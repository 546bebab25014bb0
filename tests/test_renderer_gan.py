"""The renderer generator (gan.source: renderer): its attributes are the signs it promises, its images
are the renderer's, and the method's edit with true hyperplanes does exactly what it should."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from debiaslab.errors import DebiaslabError
from debiaslab.gan import generate, invert, load_generator, sample_latents
from debiaslab.io import save_torch
from debiaslab.latent_space import edit_latents, fit_hyperplane
from debiaslab.oracle import jpeg_crop_resize
from debiaslab.params import Correlation, SynthesizeParams
from debiaslab.renderer_gan import (
    MIN_LATENT_DIM,
    NUISANCE_DIMS,
    LatentDraws,
    RendererGenerator,
    generator_from_params,
    pixel_noise,
    renderer_checkpoint,
)
from debiaslab.synth import CENTER, RENDERED_ATTRIBUTES, Nuisance, render_batch, render_settings

SKEW = 0.8
PARAMS = SynthesizeParams(correlations={"Smiling": Correlation("Eyeglasses", SKEW)}, workers=2)
VISIBLE_SMILE = dataclasses.replace(PARAMS, smile_depth=8.0, mouth_jitter=3.0, mouth_spread="normal",
                                    mouth_thickness=4.4)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def G():
    return generator_from_params(MIN_LATENT_DIM + 4, 16, PARAMS)


def test_attributes_are_the_promised_signs_with_the_training_skew(G):
    z = sample_latents(40000, G.latent_dim, seed=1)
    a = G.attributes(z)
    k_t, k_g = RENDERED_ATTRIBUTES.index("Smiling"), RENDERED_ATTRIBUTES.index("Eyeglasses")
    theta = math.pi * (1 - SKEW)
    u_t = np.zeros(G.latent_dim)
    u_t[k_g], u_t[k_t] = math.cos(theta), math.sin(theta)
    np.testing.assert_array_equal(a["Smiling"], (z @ u_t > 0).astype(np.int8))
    np.testing.assert_array_equal(a["Eyeglasses"], (z[:, k_g] > 0).astype(np.int8))
    np.testing.assert_array_equal(a["Bangs"], (z[:, RENDERED_ATTRIBUTES.index("Bangs")] > 0).astype(np.int8))
    assert abs(np.mean(a["Smiling"] == a["Eyeglasses"]) - SKEW) < 0.01  # P(t = g) = skew
    for name in RENDERED_ATTRIBUTES:
        assert abs(a[name].mean() - 0.5) < 0.01, name


def test_base_rate_sets_the_threshold():
    G = generator_from_params(MIN_LATENT_DIM, 16, SynthesizeParams(base_rate=0.2))
    a = G.attributes(sample_latents(40000, MIN_LATENT_DIM, seed=2))
    assert abs(a["Bangs"].mean() - 0.2) < 0.01


def test_nuisance_uses_exactly_its_coordinates_and_maps_zero_to_the_middle():
    draws = LatentDraws(np.zeros((3, NUISANCE_DIMS + 5)))
    nz = Nuisance.sample(3, np.zeros(3), np.zeros(3), draws, mouth_jitter=1.5)
    assert draws.used == NUISANCE_DIMS
    np.testing.assert_allclose(nz.cx, CENTER[0])
    np.testing.assert_allclose(nz.scale, 1.0)
    np.testing.assert_allclose(nz.mouth_bend, 0.0)
    with pytest.raises(DebiaslabError, match="nuisance needs more"):
        Nuisance.sample(3, np.zeros(3), np.zeros(3), LatentDraws(np.zeros((3, 10))), 1.5)


@pytest.mark.parametrize("params", [PARAMS, VISIBLE_SMILE], ids=["default", "visible-smile"])
def test_images_are_render_batch_of_the_promised_attributes_through_the_real_data_path(params):
    G = generator_from_params(MIN_LATENT_DIM + 4, 16, params)
    z = sample_latents(5, G.latent_dim, seed=3)
    first = len(RENDERED_ATTRIBUTES)
    attrs = G.attributes(z)
    nuisance = Nuisance.sample(5, attrs["Pale_Skin"], attrs["Blond_Hair"],
                               LatentDraws(z[:, first:first + NUISANCE_DIMS]), params.mouth_jitter,
                               params.mouth_spread)
    if params.mouth_spread == "normal":  # the bend is sigma * z_j for one nuisance coordinate j
        assert any(np.allclose(nuisance.mouth_bend, params.mouth_jitter * z[:, first + j])
                   for j in range(NUISANCE_DIMS))
    faces = render_batch(attrs, None, nuisance=nuisance, noise=np.stack([pixel_noise(row) for row in z]),
                         **render_settings(params))
    expected = np.stack([jpeg_crop_resize(f, PARAMS.jpeg_quality, 16) for f in faces])
    np.testing.assert_array_equal(G.render(z), expected)
    # through the GAN interface (generate: [-1, 1] floats and back) the same bytes come out
    np.testing.assert_array_equal(np.concatenate(list(generate(G, z, device=CPU))), expected)


def test_an_image_depends_on_its_latent_only(G):
    z = sample_latents(8, G.latent_dim, seed=4)
    np.testing.assert_array_equal(G.render(z)[3:8], G.render(z[3:]))
    assert not np.array_equal(G.render(z[:1]), G.render(z[1:2]))


@pytest.mark.parametrize("params", [PARAMS, VISIBLE_SMILE], ids=["default", "visible-smile"])
def test_checkpoint_round_trip_loads_weights_only(params, tmp_path):
    G = generator_from_params(MIN_LATENT_DIM + 4, 16, params)
    path = tmp_path / "generator.pt"
    save_torch(path, renderer_checkpoint(G.latent_dim, 16, params))
    loaded = load_generator(path, CPU, latent_dim=G.latent_dim)
    assert isinstance(loaded, RendererGenerator) and loaded.render_params == render_settings(params)
    z = sample_latents(3, G.latent_dim, seed=5)
    np.testing.assert_array_equal(loaded.render(z), G.render(z))


def test_a_checkpoint_with_an_unknown_mouth_spread_is_one_line(tmp_path):
    ckpt = renderer_checkpoint(MIN_LATENT_DIM, 16, PARAMS)
    ckpt["render"]["settings"]["mouth_spread"] = "cauchy"
    path = tmp_path / "generator.pt"
    save_torch(path, ckpt)
    with pytest.raises(DebiaslabError, match="not a renderer generator checkpoint.*mouth_spread"):
        load_generator(path, CPU, latent_dim=MIN_LATENT_DIM)


def test_too_few_latent_dimensions_is_one_line():
    with pytest.raises(DebiaslabError, match=f"gan.latent_dim >= {MIN_LATENT_DIM}"):
        generator_from_params(8, 16, PARAMS)


def test_inversion_is_refused(G):
    with pytest.raises(DebiaslabError, match="not differentiable"):
        invert(G, np.zeros((2, 16, 16, 3), np.uint8), steps=1, lr=0.1, prior_weight=0.0, seed=0,
               device=CPU)


def test_true_hyperplanes_make_exact_pairs(G):
    """The method's own SVMs and edit, on the renderer's true labels: every pair flips the
    protected attribute and keeps the target, by the renderer's own labels."""
    z = sample_latents(6000, G.latent_dim, seed=6)
    a = G.attributes(z)
    t = fit_hyperplane(z[:4000], a["Smiling"][:4000], name="t", C=1.0, holdout=0.2, seed=0)
    g = fit_hyperplane(z[:4000], a["Eyeglasses"][:4000], name="g", C=1.0, holdout=0.2, seed=0)
    assert t.accuracy > 0.97 and g.accuracy > 0.97
    assert abs(float(t.w @ g.w) - math.cos(math.pi * (1 - SKEW))) < 0.05
    (z_edit,) = edit_latents("standard", z[4000:], t=t, g=g, g_hat=a["Eyeglasses"][4000:],
                             max_cos=0.99).values()
    b = G.attributes(z_edit)
    assert np.mean(b["Eyeglasses"] != a["Eyeglasses"][4000:]) > 0.97
    assert np.mean(b["Smiling"] == a["Smiling"][4000:]) > 0.97
