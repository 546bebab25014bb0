"""Atomic writers: whole files only, and byte-identical output for identical content."""

import pytest
import torch

from debiaslab.io import atomic_path, save_torch, write_json


def test_same_weights_give_the_same_checkpoint_bytes(tmp_path):
    torch.manual_seed(0)
    obj = {"state_dict": torch.nn.Linear(3, 2).state_dict(), "meta": {"a": 1}}
    save_torch(tmp_path / "a.pt", obj)
    save_torch(tmp_path / "b.pt", obj)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    loaded = torch.load(tmp_path / "a.pt", weights_only=True)
    assert torch.equal(loaded["state_dict"]["weight"], obj["state_dict"]["weight"])


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.json") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    write_json(tmp_path / "ok.json", {"x": 1})
    assert (tmp_path / "ok.json").read_text().strip().startswith("{")


def test_outputs_get_the_usual_permissions_not_mkstemps_0600(tmp_path):
    from debiaslab.io import UMASK, atomic_path, write_text

    write_text(tmp_path / "a.txt", "x")
    with atomic_path(tmp_path / "d", directory=True):
        pass
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~UMASK
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~UMASK
