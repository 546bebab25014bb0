"""The GAN chain's stages on bad input: one clear line, exit code 2, nothing half-written."""

import numpy as np
import pandas as pd
import torch
from test_stages import assert_one_line_error, run_stage, workdir  # noqa: F401 - shared fixture

from debiaslab.gan import Generator, generator_config
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
