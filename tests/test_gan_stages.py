"""The GAN chain's stages on bad input: one clear line, exit code 2, nothing half-written."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_stages import assert_one_line_error, run_stage, workdir  # noqa: F401 - shared fixture

from debiaslab.gan import Generator, generator_config, load_generator
from debiaslab.io import save_torch


def write_generator(root, latent_dim=8, size=16):
    G = Generator(latent_dim, 4, size)
    save_torch(root / "models/gan/generator.pt",
               {"source": "train", "config": generator_config(G), "state_dict": G.state_dict()})


def test_no_gan_checkpoint(workdir):  # noqa: F811
    proc = run_stage(workdir, "sample_latents.py")
    assert_one_line_error(proc, "models/gan/generator.pt: no GAN checkpoint", "run the train_gan stage")


def test_latent_size_mismatch(workdir):  # noqa: F811
    write_generator(workdir, latent_dim=8)
    proc = run_stage(workdir, "sample_latents.py", params={"gan": {"latent_dim": 16}})
    assert_one_line_error(proc, "latent size mismatch", "takes 8-d latents, got 16-d")
    assert not (workdir / "data/generated/images.npy").exists()


def test_checkpoint_source_with_wrong_latent_size(workdir, tmp_path):  # noqa: F811
    write_generator(tmp_path, latent_dim=8)
    proc = run_stage(workdir, "train_gan.py", params={"gan": {
        "source": "checkpoint", "checkpoint": str(tmp_path / "models/gan/generator.pt"), "latent_dim": 32}})
    assert_one_line_error(proc, "latent size mismatch")


def test_target_with_one_class_only(workdir):  # noqa: F811
    gen = workdir / "data/generated"
    gen.mkdir(parents=True, exist_ok=True)
    np.save(gen / "latents.npy", np.random.default_rng(0).standard_normal((100, 8), dtype=np.float32))
    pd.DataFrame({"index": range(100), "Smiling": 1, "Eyeglasses": np.arange(100) % 2}).to_csv(
        gen / "labels.csv", index=False)
    proc = run_stage(workdir, "fit_hyperplanes.py", "Smiling", params={"latent_edit": {"n_fit": 60}})
    assert_one_line_error(proc, "hallucinated labels of Smiling are all 1", "needs both classes")
    assert not (gen / "Smiling").exists()


def test_not_a_gan_checkpoint(workdir):  # noqa: F811
    path = workdir / "models/gan/generator.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weights": 1}, path)
    proc = run_stage(workdir, "sample_latents.py")
    assert_one_line_error(proc, "not a GAN checkpoint of this project")


def test_checkpoint_source_writes_the_generator_and_an_empty_log(workdir, tmp_path):  # noqa: F811
    write_generator(tmp_path, latent_dim=8, size=16)
    proc = run_stage(workdir, "train_gan.py", params={"prepare": {"image_size": 16}, "gan": {
        "source": "checkpoint", "checkpoint": str(tmp_path / "models/gan/generator.pt"), "latent_dim": 8}})
    assert proc.returncode == 0, proc.stderr
    assert (workdir / "models/gan/generator.pt").is_file()
    assert (workdir / "metrics/train/gan/metrics.json").is_file()
    assert (workdir / "reports/gan/samples/final.png").is_file()


def test_oracle_refuses_an_attribute_synthfaces_does_not_draw(workdir):  # noqa: F811
    proc = run_stage(workdir, "oracle.py", params={"attributes": {"targets": ["Smiling"],
                                                                  "protected": ["Male"]}})
    assert_one_line_error(proc, "SynthFaces does not draw 'Male'", "oracle.enabled: false")


PGAN_FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "pgan_zoo"
needs_pgan_fixture = pytest.mark.skipif(not (PGAN_FIXTURE / "checkpoint.pth").is_file(),
                                        reason=f"{PGAN_FIXTURE} (pytorch_GAN_zoo's release format) is absent")


@needs_pgan_fixture
def test_pgan_source_stores_the_release_weights_and_samples_like_the_release(workdir):  # noqa: F811
    """train_gan with gan.source=pgan reads the release natively; sample_latents then draws from the
    stored generator.pt what the repository's own code drew (expected.pt), resized to the data's size."""
    params = {"prepare": {"image_size": 32}, "gan": {
        "source": "pgan", "checkpoint": str(PGAN_FIXTURE / "checkpoint.pth"), "latent_dim": 32}}
    proc = run_stage(workdir, "train_gan.py", params=params)
    assert proc.returncode == 0, proc.stderr
    assert "pgan generator, 32-d latents, 32 px" in proc.stdout
    G = load_generator(workdir / "models/gan/generator.pt", torch.device("cpu"), latent_dim=32)
    expected = torch.load(PGAN_FIXTURE / "expected.pt", weights_only=True)
    with torch.no_grad():
        images = G(expected["z"])
    resized = torch.nn.functional.interpolate(expected["avgG_out"], size=(32, 32), mode="bilinear",
                                              align_corners=False, antialias=True).clamp(-1, 1)
    torch.testing.assert_close(images, resized, atol=1e-5, rtol=1e-5)
    assert not any(p.requires_grad for p in G.parameters())


@needs_pgan_fixture
def test_pgan_source_with_wrong_latent_size_or_no_file(workdir, tmp_path):  # noqa: F811
    out = workdir / "models/gan/generator.pt"  # the workdir is shared: another test may have written it
    before = out.stat().st_mtime_ns if out.exists() else None
    proc = run_stage(workdir, "train_gan.py", params={"gan": {
        "source": "pgan", "checkpoint": str(PGAN_FIXTURE / "checkpoint.pth"), "latent_dim": 64}})
    assert_one_line_error(proc, "latent size mismatch", "takes 32-d latents, got 64-d")
    assert (out.stat().st_mtime_ns if out.exists() else None) == before
    proc = run_stage(workdir, "train_gan.py", params={"gan": {"source": "pgan", "checkpoint": None}})
    assert_one_line_error(proc, "gan.source=pgan needs a file path here")
