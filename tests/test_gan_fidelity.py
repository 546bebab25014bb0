"""The GAN's fidelity check: rates, gaps and agreement on hand-made labels; the per-epoch monitor
with a real (tiny) generator and oracle; and that checking every epoch leaves training untouched."""

import json
import shutil
import types

import numpy as np
import pytest
import torch
from test_stages import run_stage, workdir  # noqa: F401 - shared fixture

from debiaslab.gan import Generator, train_gan
from debiaslab.gan_fidelity import (
    FidelityMonitor,
    agreement_key,
    as_metrics,
    attribute_rates,
    fidelity,
    load_judge,
    modes_kept,
    real_subsample,
    summary_line,
)
from debiaslab.io import save_torch
from debiaslab.oracle import render_unbiased, train_oracle
from debiaslab.params import SynthesizeParams, TrainParams

CPU = torch.device("cpu")
NAMES = {"targets": ["Smiling"], "protected": ["Eyeglasses"]}
KEYS = {f"fidelity/{n}_{f}" for n in ("Smiling", "Eyeglasses", "Smiling_eq_Eyeglasses")
        for f in ("rate", "gap")}


def gan_params(**kw):
    base = dict(latent_dim=8, g_width=4, d_width=4, epochs=2, batch_size=16, lr_g=2e-4, lr_d=2e-4,
                ema_decay=0.99, hflip=True, precision="bf16")
    return types.SimpleNamespace(**{**base, **kw})


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    """A real oracle (1 epoch on a tiny unbiased render, 16 px) and 40 other rendered 'real' faces."""
    root = tmp_path_factory.mktemp("oracle")
    synth = SynthesizeParams(workers=1)
    images, attrs = render_unbiased(64, synth, image_size=16, seed=0)
    train_oracle(images, attrs, ["Smiling", "Eyeglasses"],
                 TrainParams(epochs=1, width=8, batch_size=16, device="cpu"),
                 model_path=str(root / "model.pt"), live_dir=str(root / "live"))
    real, labels = render_unbiased(40, synth, image_size=16, seed=1)
    return types.SimpleNamespace(path=str(root / "model.pt"), real=real, labels=labels)


def monitor_for(judge, **kw):
    oracle = load_judge(judge.path, CPU)
    return FidelityMonitor(oracle, judge.real, **NAMES, latent_dim=8, device=CPU, precision="bf16",
                           **{"n_latents": 50, "n_real": 30, **kw})


def test_rates_and_agreement_on_hand_made_labels():
    labels = {"Smiling": np.array([1, 1, 0, 0]), "Eyeglasses": np.array([1, 0, 0, 0])}
    rates = attribute_rates(labels, pairs=[("Smiling", "Eyeglasses")])
    assert rates == {"Smiling": 0.5, "Eyeglasses": 0.25, "Smiling_eq_Eyeglasses": 0.75}
    assert agreement_key("Smiling", "Eyeglasses") == "Smiling_eq_Eyeglasses"
    assert attribute_rates(labels) == {"Smiling": 0.5, "Eyeglasses": 0.25}


@pytest.mark.parametrize(("labels", "pairs", "message"), [
    ({"A": np.array([0, 1]), "B": np.array([1])}, (), "one length"),
    ({"A": np.array([], int)}, (), "non-empty"),
    ({"A": np.array([0, 2])}, (), "0/1"),
    ({"A": np.array([0, 1])}, [("A", "B")], "no labels for 'B'"),
])
def test_rates_refuse_bad_labels(labels, pairs, message):
    with pytest.raises(ValueError, match=message):
        attribute_rates(labels, pairs=pairs)


def test_fidelity_gaps_and_metric_names():
    report = fidelity({"Smiling": 0.25, "Smiling_eq_Eyeglasses": 0.5},
                      {"Smiling": 0.5, "Smiling_eq_Eyeglasses": 0.75, "Other": 1.0},
                      true_rates={"Smiling": 0.5, "Smiling_eq_Eyeglasses": 0.9})
    assert report == {"Smiling": {"generated": 0.25, "data": 0.5, "gap": -0.25, "true": 0.5},
                      "Smiling_eq_Eyeglasses": {"generated": 0.5, "data": 0.75, "gap": -0.25,
                                                "true": 0.9}}
    assert as_metrics(report) == {"fidelity/Smiling_rate": 0.25, "fidelity/Smiling_gap": -0.25,
                                  "fidelity/Smiling_eq_Eyeglasses_rate": 0.5,
                                  "fidelity/Smiling_eq_Eyeglasses_gap": -0.25}
    assert as_metrics(report, prefix="", fields=("data", "true")) == {
        "Smiling_data_rate": 0.5, "Smiling_true_rate": 0.5,
        "Smiling_eq_Eyeglasses_data_rate": 0.75, "Smiling_eq_Eyeglasses_true_rate": 0.9}
    assert summary_line(report) == "Smiling 0.25 vs 0.50 (-0.25), Smiling_eq_Eyeglasses 0.50 vs 0.75 (-0.25)"
    assert "true" not in fidelity({"A": 0.1}, {"A": 0.2})["A"]
    with pytest.raises(ValueError, match="data_rates has no rate for 'A'"):
        fidelity({"A": 0.1}, {"B": 0.2})
    with pytest.raises(ValueError, match="true_rates has no rate for 'A'"):
        fidelity({"A": 0.1}, {"A": 0.2}, true_rates={})
    with pytest.raises(ValueError, match="unknown field"):
        as_metrics(report, fields=("rate",))


def test_real_subsample_is_fixed_sorted_and_capped():
    a = real_subsample(100, 10)
    assert np.array_equal(a, real_subsample(100, 10)) and np.all(np.diff(a) > 0) and len(a) == 10
    assert np.array_equal(real_subsample(5, 10), np.arange(5))


def test_modes_are_restored_per_module():
    G = Generator(latent_dim=8, width=4, image_size=16).train()
    G.blocks[0].eval()  # a mixed state, as nn.Module.train(mode) could not restore
    before = [m.training for m in G.modules()]
    with modes_kept(G):
        G.eval()
    assert [m.training for m in G.modules()] == before


def test_disabled_oracle_is_none(tmp_path):
    save_torch(tmp_path / "off.pt", {"enabled": False})
    assert load_judge(str(tmp_path / "off.pt"), CPU) is None


def test_monitor_reports_rates_without_touching_weights_modes_or_rng(judge):
    torch.manual_seed(123)
    G = Generator(latent_dim=8, width=4, image_size=16)
    rng_before = torch.get_rng_state()
    monitor = monitor_for(judge, true_labels=judge.labels)  # loading the oracle draws nothing either
    assert torch.equal(torch.get_rng_state(), rng_before)
    for mode in (True, False):
        G.train(mode)
        weights = {k: v.clone() for k, v in G.state_dict().items()}
        report = monitor(G)
        assert set(as_metrics(report)) == KEYS
        assert set(as_metrics(report, fields=("data", "true"))) == {
            k.replace("_rate", "_data_rate").replace("_gap", "_true_rate") for k in KEYS}
        assert all(0 <= row[f] <= 1 for row in report.values() for f in ("generated", "data", "true"))
        assert all(row["gap"] == pytest.approx(row["generated"] - row["data"]) for row in report.values())
        assert G.training is mode and all(m.training is mode for m in G.modules())
        assert all(torch.equal(weights[k], v) for k, v in G.state_dict().items())
        assert torch.equal(torch.get_rng_state(), rng_before)
    assert monitor(G) == report  # fixed latents, fixed real subsample: a deterministic check
    assert report["Smiling"]["true"] == pytest.approx(np.mean(judge.labels["Smiling"]))


def test_monitor_refuses_an_oracle_of_another_image_size(judge):
    from debiaslab.errors import DebiaslabError

    real = np.zeros((4, 32, 32, 3), np.uint8)
    with pytest.raises(DebiaslabError, match="judges 16-px images, the GAN draws 32-px"):
        FidelityMonitor(load_judge(judge.path, CPU), real, **NAMES, latent_dim=8, device=CPU)


def test_checking_every_epoch_leaves_training_bit_identical(judge):
    images = judge.real  # 40 faces at 16 px: two batches of 16 an epoch
    reports = []

    def run(check: bool):
        torch.manual_seed(0)
        monitor = monitor_for(judge) if check else None

        def on_epoch(epoch, logs, ema):
            if monitor is not None:
                reports.append(as_metrics(monitor(ema)))

        return train_gan(images, gan_params(), device=CPU, generator=torch.Generator().manual_seed(0),
                         on_epoch=on_epoch, progress=False)

    plain, checked = run(False), run(True)
    assert len(reports) == 2 and all(set(r) == KEYS for r in reports)
    assert not checked.training
    for (name, a), b in zip(plain.state_dict().items(), checked.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_stage_logs_fidelity_each_epoch_and_skips_it_without_an_oracle(workdir, judge):  # noqa: F811
    oracle = workdir / "models/oracle/model.pt"
    oracle.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(judge.path, oracle)
    tiny = {"prepare": {"image_size": 16}, "gan": {"epochs": 2, "latent_dim": 8, "g_width": 4,
                                                   "d_width": 4, "batch_size": 16}}
    proc = run_stage(workdir, "train_gan.py", params=tiny)
    assert proc.returncode == 0, proc.stderr
    assert "train_gan: fidelity after epoch 2" in proc.stdout and "Smiling_eq_Eyeglasses" in proc.stdout
    live = workdir / "metrics/train/gan"
    summary = json.loads((live / "metrics.json").read_text())
    assert {f"fidelity/{k}" for k in summary["fidelity"]} == KEYS | {
        k.replace("_rate", "_data_rate").replace("_gap", "_true_rate") for k in KEYS}
    assert all(0 <= v <= 1 for k, v in summary["fidelity"].items() if k.endswith("rate"))
    history = (live / "plots/metrics/fidelity/Smiling_gap.tsv").read_text().splitlines()
    assert len(history) == 3  # a header and one row per epoch
    checked = torch.load(workdir / "models/gan/generator.pt", weights_only=True)["state_dict"]

    save_torch(oracle, {"enabled": False})  # real data: the oracle stage wrote a marker
    proc = run_stage(workdir, "train_gan.py", params=tiny)
    assert proc.returncode == 0, proc.stderr
    assert "fidelity" not in proc.stdout
    assert "fidelity" not in json.loads((live / "metrics.json").read_text())
    plain = torch.load(workdir / "models/gan/generator.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(plain[k], v) for k, v in checked.items())  # the check changed no weight
    shutil.rmtree(workdir / "models/oracle")
