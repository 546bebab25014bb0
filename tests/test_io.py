"""Atomic writers: whole files only, and byte-identical output for identical content."""

from pathlib import Path

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


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path):
    """SIGKILL skips the clean-up: the next write of the same output removes the leftover, but
    not the temporary of a writer that is still running."""
    import os
    import signal
    import subprocess
    import sys

    code = ("import os, sys, time; from debiaslab.io import atomic_path\n"
            "with atomic_path(sys.argv[1], directory=True) as tmp:\n"
            "    (tmp / 'part.npy').write_bytes(b'x' * 1000); print(tmp, flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "prepared")],
                            stdout=subprocess.PIPE, text=True)
    leftover = Path(proc.stdout.readline().strip())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert leftover.is_dir() and leftover.name.startswith(".prepared.tmp-")
    running = tmp_path / f".prepared.tmp-{os.getpid()}-live"
    running.mkdir()
    with atomic_path(tmp_path / "prepared", directory=True) as tmp:
        (tmp / "ok").write_text("1")
    assert not leftover.exists() and running.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [running.name, "prepared"]
