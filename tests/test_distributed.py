"""Data-parallel training: 2 CPU processes on gloo under torchrun compute what one process does."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO

from debiaslab import distributed
from debiaslab.celeba import read_celeba
from debiaslab.data import ArrayDataset
from debiaslab.errors import DebiaslabError
from debiaslab.params import TrainParams
from debiaslab.prepare import prepare
from debiaslab.train import load_checkpoint, train_and_save

WORKER = REPO / "tests" / "helpers" / "ddp_worker.py"


def run(cmd, cwd, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def torchrun(*args):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
            *map(str, args)]


def test_single_process_helpers_are_identities():
    index = np.arange(7)
    assert distributed.world_size() == 1 and distributed.is_main()
    assert distributed.local_part(index) is index
    x = torch.arange(5.0)
    assert distributed.gather_parts(x, 5) is x


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    run([sys.executable, WORKER, out / "single"], out)
    run(torchrun(WORKER, out / "ddp"), out)
    load = lambda p: torch.load(p, weights_only=True)  # noqa: E731
    return load(out / "single/rank0.pt"), load(out / "ddp/rank0.pt"), load(out / "ddp/rank1.pt")


def test_two_processes_match_one(runs):
    single, rank0, _ = runs
    assert single["world"] == 1 and rank0["world"] == 2
    for name, weight in single["state"].items():
        torch.testing.assert_close(rank0["state"][name], weight, rtol=0, atol=1e-6)
    assert [h["val_score"] for h in rank0["history"]] == pytest.approx(
        [h["val_score"] for h in single["history"]], abs=1e-6)


def test_processes_end_with_identical_weights(runs):
    _, rank0, rank1 = runs
    for name, weight in rank0["state"].items():
        assert torch.equal(rank1["state"][name], weight), name


def test_validation_scores_every_sample_once(runs):
    single, rank0, rank1 = runs
    # 37 validation rows split 19/18 between the processes, gathered back in order
    assert rank0["scores"].shape == single["scores"].shape == (37,)
    torch.testing.assert_close(rank0["scores"], single["scores"], rtol=0, atol=1e-6)
    assert torch.equal(rank0["scores"], rank1["scores"])


def test_unsupported_method_refused_before_launch():
    data = ArrayDataset(np.zeros((4, 8, 8, 3), np.uint8), np.array([0, 1, 0, 1]))
    with pytest.raises(DebiaslabError, match="lff: cannot train with train.nproc_per_node > 1"):
        train_and_save("lff", 2, data, data, TrainParams(nproc_per_node=2),
                       model_path="unused.pt", live_dir="unused")


def test_training_stage_relaunches_itself_under_torchrun(synthfaces_dir, tmp_path):
    prepare(read_celeba(synthfaces_dir), tmp_path / "data" / "prepared", image_size=16,
            workers=1, progress=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"].update({"epochs": 1, "width": 8, "nproc_per_node": 2})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run([sys.executable, REPO / "stages" / "train_baseline.py", "Smiling"], tmp_path)
    assert "Traceback" not in proc.stderr
    assert proc.stdout.count("train_baseline Smiling: best epoch 1") == 1  # rank 0 only
    method, meta = load_checkpoint(tmp_path / "models/baseline/Smiling/model.pt",
                                   torch.device("cpu"))
    assert meta["attribute"] == "Smiling"
    assert (tmp_path / "metrics/train/baseline/Smiling/metrics.json").is_file()


def test_unsupported_method_refused_under_a_users_torchrun(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    data = ArrayDataset(np.zeros((4, 8, 8, 3), np.uint8), np.array([0, 1, 0, 1]))
    with pytest.raises(DebiaslabError, match="lff: cannot train"):
        train_and_save("lff", 2, data, data, TrainParams(), model_path="unused.pt",
                       live_dir="unused")
