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
