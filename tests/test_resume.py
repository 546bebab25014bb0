"""A training run interrupted part-way resumes from its last epoch to the same final weights."""

import pytest
import torch
from test_train import CPU, square_task

from debiaslab.device import seed_everything
from debiaslab.params import TrainParams
from debiaslab.train import fit, make_method

PARAMS = TrainParams(epochs=3, width=8, batch_size=32)


class Killed(Exception):
    pass


def run(resume_path, params=PARAMS, *, kill_at_step=None):
    """Train from scratch (or resume); raise Killed at update number ``kill_at_step``."""
    generator = seed_everything(0)
    method = make_method("erm", 1, params, CPU)
    if kill_at_step is not None:
        update, calls = method.update, []

        def dying_update(batch):
            calls.append(1)
            if len(calls) == kill_at_step:
                raise Killed
            return update(batch)

        method.update = dying_update
    result = fit(method, square_task(200, 1), square_task(64, 2), params, generator=generator,
                 progress=False, resume_path=resume_path)
    return method.model.state_dict(), result


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, capsys):
    reference, ref_result = run(None)
    resume = tmp_path / "resume.pt"
    with pytest.raises(Killed):
        run(resume, kill_at_step=7 + 3)  # 7 batches per epoch: dies in the second epoch
    assert resume.is_file()
    weights, result = run(resume)
    assert "after epoch 1" in capsys.readouterr().err
    assert result.history == ref_result.history and result.best_epoch == ref_result.best_epoch
    for name, tensor in reference.items():
        assert torch.equal(weights[name], tensor), name


def test_resume_file_of_other_settings_is_ignored(tmp_path, capsys):
    resume = tmp_path / "resume.pt"
    with pytest.raises(Killed):
        run(resume, kill_at_step=10)
    other = TrainParams(epochs=3, width=8, batch_size=32, lr=5e-4)
    _, result = run(resume, other)
    assert "resuming" not in capsys.readouterr().err
    assert len(result.history) == 3


def test_unreadable_resume_file_means_a_fresh_start(tmp_path, capsys):
    resume = tmp_path / "resume.pt"
    resume.write_bytes(b"half a file")
    _, result = run(resume)
    assert "resuming" not in capsys.readouterr().err and len(result.history) == 3


def killed_run_state(tmp_path):
    """The resume file of a run killed in its second epoch, loaded, and where it lives."""
    resume = tmp_path / "resume.pt"
    with pytest.raises(Killed):
        run(resume, kill_at_step=10)
    return resume, torch.load(resume, weights_only=True)


def wrong_shape(state):
    state["models"][0]["head.weight"] = torch.zeros(3, 3)


def wrong_optimizer_shape(state):
    state["optimizer"]["state"][0]["exp_avg"] = torch.zeros(2)


def wrong_rng(state):
    state["generator"] = torch.zeros(3, dtype=torch.uint8)


def bad_history(state):
    state["history"] = "epoch 1"


def bad_best_epoch(state):
    state["best_epoch"] = 7


def missing_optimizer(state):
    del state["optimizer"]


@pytest.mark.parametrize("content, reason", [
    ([1, 2], "not a resume file (it holds a list, not a dict)"),
    ({"weights": 1}, "not a resume file (a dict with keys weights; missing keys: fingerprint"),
    (wrong_shape, "its weights do not fit the model (first mismatch: head.weight has shape [3,3], "
                  "the model expects [1,32])"),
    (wrong_optimizer_shape, "its optimizer state does not fit the model (the state of parameter 0 has "
                            "the wrong shape)"),
    (wrong_rng, "its generator entry is not a random generator state"),
    (bad_history, "its history is not a list of finished epochs"),
    (bad_best_epoch, "its best epoch is not one of its epochs"),
    (missing_optimizer, "missing keys: optimizer"),
])
def test_malformed_resume_file_means_a_fresh_start(tmp_path, capsys, content, reason):
    reference, _ = run(None)
    resume, state = killed_run_state(tmp_path)
    if callable(content):
        content(state)  # the fingerprint still matches: only the entries are wrong
    else:
        state = content
    torch.save(state, resume)
    capsys.readouterr()
    weights, result = run(resume)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ignoring {resume}: ") and reason in err[0], err
    assert err[0].endswith("; training starts afresh")
    assert len(result.history) == 3
    for name, tensor in reference.items():  # from scratch: nothing of the bad file was kept
        assert torch.equal(weights[name], tensor), name


def test_resume_file_with_pickled_objects_is_ignored_unexecuted(tmp_path, capsys):
    from test_checkpoints import REFUSED, payload_files

    marker, files = payload_files(tmp_path)
    resume = tmp_path / "resume.pt"
    resume.write_bytes(files["system"].read_bytes())
    _, result = run(resume)
    err = capsys.readouterr().err
    assert f"ignoring {resume}: {REFUSED}" in err and len(result.history) == 3
    assert not marker.exists()


def test_a_restore_failing_part_way_is_undone(tmp_path, capsys, monkeypatch):
    """Checks pass, then the optimizer refuses the state after the weights were loaded: the run
    must start afresh from its own initial weights, not from the file's."""
    reference, _ = run(None)
    resume, _ = killed_run_state(tmp_path)
    real = torch.optim.Adam.load_state_dict
    calls = []

    def fail_once(self, state):
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("simulated")
        return real(self, state)

    monkeypatch.setattr(torch.optim.Adam, "load_state_dict", fail_once)
    capsys.readouterr()
    weights, result = run(resume)
    assert "cannot restore it (simulated); training starts afresh" in capsys.readouterr().err
    assert len(result.history) == 3
    for name, tensor in reference.items():
        assert torch.equal(weights[name], tensor), name
