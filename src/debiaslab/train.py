"""The one training loop: epochs of ``method.update``, best epoch on validation, checkpoint."""

from __future__ import annotations

import copy
import hashlib
import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import distributed, metrics
from .checkpoints import (
    describe,
    first_line,
    key_list,
    load_module_weights,
    load_weights_file,
    missing_keys,
    state_dict_problem,
)
from .data import ArrayDataset
from .errors import DebiaslabError
from .io import save_torch
from .methods import Method, get_method
from .models import build_model


@dataclass
class FitResult:
    best_epoch: int
    best_val_score: float
    history: list[dict] = field(default_factory=list)


@torch.inference_mode()
def predict_logits(method: Method, data: ArrayDataset, batch_size: int = 512) -> np.ndarray:
    """Logits (N, outputs), float32, in the dataset's order. Data-parallel processes each
    score their own contiguous part and gather the rest, so every sample is scored once."""
    method.model.eval()
    rows = distributed.local_part(np.arange(len(data)))
    out = [method.predict(b.x)
           for b in data.batches(batch_size, method.device, order=rows,
                                 channels_last=method.params.channels_last)]
    return distributed.gather_parts(torch.cat(out), len(data)).cpu().numpy()


def scores_from_logits(logits: np.ndarray, multiclass: bool) -> np.ndarray:
    """Softmax for class indices; sigmoid otherwise, squeezed to (N,) for one output."""
    t = torch.from_numpy(logits)
    scores = (torch.softmax(t, 1) if multiclass else torch.sigmoid(t)).numpy()
    return scores[:, 0] if scores.shape[1] == 1 else scores


def predict_scores(method: Method, data: ArrayDataset, batch_size: int = 512) -> np.ndarray:
    """Probabilities: (N,) for a binary target, (N, K) for multi-label or multi-class."""
    logits = predict_logits(method, data, batch_size)
    return scores_from_logits(logits, multiclass=data.y.ndim == 1 and logits.shape[1] > 1)


def selection_score(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Validation score for picking the best epoch: AP (mean over labels for multi-label);
    accuracy for multi-class."""
    if y_true.ndim == 1 and scores.ndim == 2:
        return float(np.mean(scores.argmax(1) == y_true))
    if y_true.ndim == 1:
        return metrics.average_precision(y_true, scores)
    return float(np.nanmean([metrics.average_precision(y_true[:, k], scores[:, k])
                             for k in range(y_true.shape[1])]))


def make_method(name: str, num_outputs: int, params, device: torch.device,
                hparams: dict | None = None, context: dict | None = None, *,
                image_size: int = 32) -> Method:
    cls = get_method(name)  # imports the method's module: a stage imports only what it trains
    # Validate the architecture with a clean error before any method state exists. This build
    # also consumes one initialisation's worth of random draws, which the seeded results in
    # dvc.lock depend on: removing it changes every model's initial weights.
    build_model(num_outputs, params, image_size)

    def factory():
        return build_model(num_outputs, params, image_size)

    return cls(factory, params, device, hparams, context)


def fit(method: Method, train: ArrayDataset, val: ArrayDataset, params, *,
        generator: torch.Generator, live=None, progress: bool = True,
        select_best: bool = True, score_fn=selection_score,
        resume_path: str | Path | None = None) -> FitResult:
    """Train for ``params.epochs`` (or exactly ``params.steps`` optimiser steps, the last epoch cut
    short, as the papers that count iterations do; the learning rate is multiplied by
    ``params.lr_gamma`` every ``params.lr_decay_step`` steps when that is > 0); keep the weights of
    the epoch with the best validation score
    (``score_fn(y_val, scores)``; by default AP for binary and multi-label targets, accuracy for
    multi-class), or of the last epoch when ``select_best`` is false (a deliberately biased
    model must not be picked on unbiased data).

    With ``resume_path``, the complete training state is saved there after every epoch, and a
    run killed part-way continues from its last finished epoch, to the same final weights as an
    uninterrupted run (for methods whose state is their models and optimiser: ``resumable``).
    """
    for name, data in (("train", train), ("val", val)):
        columns = data.y.reshape(len(data.y), -1).T if data.y.ndim == 2 else [data.y]
        if any(len(np.unique(c)) < 2 for c in columns):
            raise DebiaslabError(f"the {name} split has only one class of the target; "
                                 "a classifier needs both")
    result = FitResult(best_epoch=-1, best_val_score=-np.inf)
    best_state = None
    method.setup(train, total_steps=params.steps or params.epochs * -(-len(train) // params.batch_size))
    resume = (Resume(resume_path, method, train, val, params, score_fn) if method.resumable
              else Resume(None))
    if (saved := resume.load(method, generator)) is not None:
        result, best_state = saved
        for row in result.history:  # the killed run's curves, into this run's DVCLive files
            log_epoch(live, row)
    for epoch in itertools.count(len(result.history)):
        if epoch == params.epochs and not params.steps:
            break
        method.model.train()
        order = method.epoch_order(train, generator)
        steps = epoch_steps(epoch, -(-len(order) // params.batch_size), params)
        if not steps:  # params.steps reached
            break
        batches = train.batches(params.batch_size, method.device, order=order,
                                generator=generator, hflip=params.hflip,
                                channels_last=params.channels_last, shard=True)
        logs = []
        for step, b in zip(steps, tqdm(  # a range shorter than the epoch stops it early
                batches, total=len(steps), unit="batch", leave=False,
                desc=f"epoch {epoch + 1}" + (f" (to step {params.steps})" if params.steps
                                             else f"/{params.epochs}"),
                disable=not (progress and distributed.is_main())), strict=False):
            if params.lr_decay_step:
                decay_learning_rate(method.optimizer, params.lr_gamma ** (step // params.lr_decay_step))
            logs.append(method.update(b))
        # a value a method logs only on some batches (e.g. after an accumulated step) is averaged
        # over those
        keys = dict.fromkeys(k for log in logs for k in log)
        means = {f"train_{k}": float(np.mean([log[k] for log in logs if k in log])) for k in keys}
        check_finite(means, epoch + 1, params.lr)  # before scoring: a NaN model has no AP
        val_score = score_fn(val.y, predict_scores(method, val))
        row = {"epoch": epoch + 1, **means, "val_score": val_score}
        result.history.append(row)
        log_epoch(live, row)
        if val_score > result.best_val_score or not select_best:
            result.best_epoch, result.best_val_score = epoch + 1, val_score
            best_state = copy.deepcopy(method.model.state_dict())
        resume.save(method, generator, result, best_state)
    method.model.load_state_dict(best_state)
    return result


def epoch_steps(epoch: int, per_epoch: int, params) -> range:
    """The optimiser steps of ``epoch`` (numbered from 0 over the whole run): all ``per_epoch`` of
    them, or with ``params.steps`` only those before it (none once it is reached)."""
    steps = range(epoch * per_epoch, (epoch + 1) * per_epoch)
    return steps[:max(params.steps - steps.start, 0)] if params.steps else steps


def decay_learning_rate(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Each parameter group's learning rate at ``factor`` times its initial one (step decay)."""
    for group in optimizer.param_groups:
        group["lr"] = group.setdefault("initial_lr", group["lr"]) * factor


def check_finite(means: dict[str, float], epoch: int, lr: float) -> None:
    """Stop a diverged run: NaN weights would otherwise train on to a useless model that the
    stage saves and reports as if it were fine. Every process agrees, so none waits for another."""
    bad = next((k for k, v in means.items() if not np.isfinite(v)), None)
    if distributed.all_true(bad is None):
        return
    name = "loss" if bad in (None, "train_loss") else bad.removeprefix("train_")
    value = "not finite in another process" if bad is None else f"{means[bad]}"
    raise DebiaslabError(f"training diverged: the {name} is {value} in epoch {epoch} "
                         f"(lower the learning rate, lr = {lr}, or check the data)")


def log_epoch(live, row: dict) -> None:
    if live is None:
        return
    for key, value in row.items():
        if key.startswith("train_"):
            live.log_metric(f"train/{key[6:]}", value)
    live.log_metric("val/score", row["val_score"])
    live.next_step()


class Resume:
    """The training state after each epoch, in one file next to the model (``resume.pt``).

    It is used only by a run with the same method, hyperparameters, training params and data
    (a fingerprint of labels, shapes and every k-th image): a stale file is ignored. Written
    atomically by rank 0; removed by train_and_save once the model is saved.
    """

    def __init__(self, path, method=None, train=None, val=None, params=None, score_fn=None):
        self.path = None if path is None else Path(path)
        if self.path is not None:
            self.fingerprint = self._fingerprint(method, train, val, params, score_fn)
            self.epochs = params.epochs

    @staticmethod
    def _fingerprint(method, train, val, params, score_fn) -> str:
        digest = hashlib.blake2b(digest_size=16)
        config = {k: v for k, v in vars(params).items() if k not in ("device", "nproc_per_node")}
        digest.update(repr((method.name, sorted(method.hparams.items()), sorted(config.items()),
                            getattr(score_fn, "__qualname__", repr(score_fn)))).encode())
        for source in sorted(Path(__file__).parent.glob("*.py")):  # the library's code version
            digest.update(source.read_bytes())
        for data in (train, val):
            stride = max(1, len(data) // 1024)
            for array in (data.y, data.g, np.asarray(data.images[::stride])):
                if array is not None:
                    digest.update(repr(array.shape).encode())
                    digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def save(self, method, generator, result: FitResult, best_state) -> None:
        if self.path is None or not distributed.is_main():
            return
        save_torch(self.path, {
            "fingerprint": self.fingerprint, "history": result.history,
            "best_epoch": result.best_epoch, "best_val_score": float(result.best_val_score),
            "best_state": best_state, "models": [m.state_dict() for m in method.modules()],
            "optimizer": method.optimizer.state_dict(), "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state() if method.device.type == "cuda" else None})

    def load(self, method, generator):
        """Restore ``method`` and ``generator``; (result so far, best weights), or None.

        A file that cannot be used (unreadable, stale, or not what ``save`` writes) means a fresh
        start and one line on stderr: it must not stop every later run until deleted by hand.
        """
        state, why = self._read(method, generator)
        if distributed.all_true(state is not None):  # every process resumes, or none
            snapshot = _snapshot(method, generator)
            try:
                _restore(state, method, generator)
                why = None
            except Exception as err:  # noqa: BLE001 - checked above; a miss costs a restart only
                why = f"cannot restore it ({first_line(err)})"
            if distributed.all_true(why is None):
                result = FitResult(state["best_epoch"], state["best_val_score"], state["history"])
                if distributed.is_main():
                    print(f"resuming from {self.path} after epoch {len(result.history)}",
                          file=sys.stderr)
                return result, state["best_state"]
            _restore(snapshot, method, generator)  # not half-loaded: exactly as before
        if why is not None and distributed.is_main():
            print(f"ignoring {self.path}: {why}; training starts afresh", file=sys.stderr)
        return None

    def _read(self, method, generator) -> tuple[dict | None, str | None]:
        """(the saved state, None) if it can be resumed from, else (None, why not); (None, None)
        when there is no file."""
        if self.path is None or not self.path.is_file():
            return None, None
        try:
            state = load_weights_file(self.path, method.device, what="resume file")
        except DebiaslabError as err:
            return None, str(err).removeprefix(f"{self.path}: ")
        why = self._problem(state, method, generator)
        return (state, None) if why is None else (None, why)

    def _problem(self, state, method, generator) -> str | None:
        """Why ``state`` cannot be resumed from, or None. Checked in full before anything is
        restored, so a malformed file never leaves the method half-loaded."""
        if not isinstance(state, dict):
            return f"not a resume file (it holds {describe(state)}, not a dict)"
        missing = missing_keys(state, RESUME_KEYS)
        if missing:
            return f"not a resume file ({describe(state)}; missing keys: {key_list(missing, 4)})"
        if state["fingerprint"] != self.fingerprint:
            return "written by a run with other settings, data or code"
        history, best = state["history"], state["best_epoch"]
        if not (isinstance(history, list) and 1 <= len(history) <= self.epochs
                and all(_is_history_row(row) for row in history)):
            return "its history is not a list of finished epochs"
        if (not isinstance(best, int) or not 1 <= best <= len(history)
                or not isinstance(state["best_val_score"], (int, float))):
            return "its best epoch is not one of its epochs"
        modules = method.modules()
        if not isinstance(state["models"], list) or len(state["models"]) != len(modules):
            return f"it does not hold the {len(modules)} network(s) of method {method.name}"
        for module, weights in zip([*modules, method.model], [*state["models"], state["best_state"]],
                                   strict=True):
            if (problem := state_dict_problem(module, weights)) is not None:
                return f"its weights do not fit the model ({problem})"
        return _optimizer_problem(method.optimizer, state["optimizer"]) or _rng_problem(state, generator)

    @staticmethod
    def clear(path: Path) -> None:
        if distributed.is_main():
            path.unlink(missing_ok=True)


RESUME_KEYS = ("fingerprint", "history", "best_epoch", "best_val_score", "best_state", "models",
               "optimizer", "generator", "torch_rng")


def _is_history_row(row) -> bool:
    return (isinstance(row, dict) and "epoch" in row and "val_score" in row
            and all(isinstance(v, (int, float)) for v in row.values()))


def _optimizer_problem(optimizer: torch.optim.Optimizer, saved) -> str | None:
    """Why ``saved`` is not a state of ``optimizer`` (same groups, settings and tensor shapes):
    a wrong shape would only fail at the first step, as a traceback."""
    bad = "its optimizer state does not fit the model"
    if missing_keys(saved, ("state", "param_groups")) or not isinstance(saved["state"], dict):
        return f"{bad} (not an optimizer state dict)"
    groups = saved["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(optimizer.param_groups):
        return f"{bad} (other parameter groups)"
    for group, current in zip(groups, optimizer.param_groups, strict=True):
        ids = group.get("params") if isinstance(group, dict) else None
        if (not isinstance(ids, list) or len(ids) != len(current["params"])
                or not all(isinstance(i, int) for i in ids)):
            return f"{bad} (other parameters)"
        if any(type(group.get(k)) is not type(v) for k, v in current.items() if k != "params"):
            return f"{bad} (other optimizer settings)"
        for i, param in zip(ids, current["params"], strict=True):
            entry = saved["state"].get(i, {})
            if not isinstance(entry, dict) or any(
                    isinstance(t, torch.Tensor) and t.ndim > 0 and t.shape != param.shape
                    for t in entry.values()):
                return f"{bad} (the state of parameter {i} has the wrong shape)"
    return None


def _rng_problem(state: dict, generator: torch.Generator) -> str | None:
    expected = {"generator": generator.get_state(), "torch_rng": torch.get_rng_state()}
    for key, want in expected.items():
        have = state[key]
        if not (isinstance(have, torch.Tensor) and have.dtype == torch.uint8 and have.shape == want.shape):
            return f"its {key} entry is not a random generator state"
    cuda = state.get("cuda_rng")
    if cuda is not None and not (isinstance(cuda, torch.Tensor) and cuda.dtype == torch.uint8):
        return "its cuda_rng entry is not a random generator state"
    return None


def _snapshot(method, generator) -> dict:
    """What :func:`_restore` changes, as it is now (to undo a restore that failed part-way)."""
    return {"models": [copy.deepcopy(m.state_dict()) for m in method.modules()],
            "optimizer": copy.deepcopy(method.optimizer.state_dict()),
            "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state() if method.device.type == "cuda" else None}


def _restore(state: dict, method, generator) -> None:
    for module, weights in zip(method.modules(), state["models"], strict=True):
        module.load_state_dict(weights)
    method.optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"].cpu())
    torch.set_rng_state(state["torch_rng"].cpu())
    if state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(state["cuda_rng"].cpu())


def save_checkpoint(path: str | Path, method: Method, params, **meta) -> None:
    """State dict plus what is needed to rebuild the model; loadable with weights_only=True."""
    config = {k: v for k, v in vars(params).items() if k != "weights"}
    save_torch(path, {"state_dict": method.state_dict(), "method": method.name,
                      "hparams": dict(method.hparams), "train": config, "meta": meta})


def train_and_save(method_name: str, num_outputs: int, train: ArrayDataset, val: ArrayDataset,
                   params, *, model_path: str, live_dir: str, hparams: dict | None = None,
                   context: dict | None = None, score_fn=selection_score,
                   **meta) -> tuple[Method, FitResult]:
    """What every training stage does: seed, fit with DVCLive logging, save the best checkpoint.

    With ``params.nproc_per_node > 1`` the stage re-executes itself under torchrun here; the
    processes train data-parallel (:mod:`debiaslab.distributed`), then all but rank 0 exit and
    rank 0 carries on alone with the rest of the stage (saving, evaluating, plotting).
    """
    from dvclive import Live

    from .device import resolve_device, seed_everything

    # one check, before any process is started: params ask for several, or a user's torchrun did
    if (distributed.planned_world_size(params.nproc_per_node) > 1
            and not get_method(method_name).supports_distributed):
        raise DebiaslabError(f"{method_name}: cannot train with train.nproc_per_node > 1 (its "
                             "per-sample state is not shared between processes); set it to 1")
    distributed.relaunch_under_torchrun(params.nproc_per_node)
    device = distributed.init(resolve_device(params.device))
    generator = seed_everything(params.seed)
    method = make_method(method_name, num_outputs, params, device, hparams,
                         context, image_size=int(train.images.shape[1]))
    distributed.broadcast_state(method.modules())
    live = Live(live_dir, dvcyaml=False, save_dvc_exp=False) if distributed.is_main() else None
    result = fit(method, train, val, params, generator=generator, live=live, score_fn=score_fn,
                 resume_path=Path(model_path).with_name("resume.pt"))
    distributed.finish()
    if live is None:
        raise SystemExit(0)  # a helper process: rank 0 writes every output
    live.summary["best_epoch"] = result.best_epoch
    live.summary["best_val_score"] = round(result.best_val_score, 6)
    live.end()
    save_checkpoint(model_path, method, params, num_outputs=num_outputs,
                    image_size=int(train.images.shape[1]), best_epoch=result.best_epoch, **meta)
    Resume.clear(Path(model_path).with_name("resume.pt"))  # only now: the model is safe
    return method, result


CHECKPOINT_KEYS = ("state_dict", "method", "train", "meta")


def load_checkpoint(path: str | Path, device: torch.device) -> tuple[Method, dict]:
    path = Path(path)
    if not path.is_file():
        raise DebiaslabError(f"{path}: checkpoint not found (run the training stage)")
    return method_from_checkpoint(load_weights_file(path, device), path, device)


def method_from_checkpoint(ckpt, path: str | Path, device: torch.device) -> tuple[Method, dict]:
    """The method and meta of a loaded checkpoint (as written by :func:`save_checkpoint`);
    anything else, such as another stage's file, is a one-line error naming ``path``."""
    from .params import TrainParams

    _check_checkpoint(ckpt, path)
    meta = ckpt["meta"]
    try:
        params = TrainParams(**ckpt["train"])
        method = make_method(ckpt["method"], meta.get("num_outputs", 1), params, device,
                             ckpt.get("hparams"), {"training": False},
                             image_size=meta.get("image_size", 32))
    except DebiaslabError as err:
        raise DebiaslabError(f"{path}: {err}") from None
    except (TypeError, ValueError) as err:  # TrainParams of another version, or bad values
        raise DebiaslabError(f"{path}: its train settings are not valid ({first_line(err)})") from None
    load_module_weights(method.model, ckpt["state_dict"], str(path))
    return method, meta


def _check_checkpoint(ckpt, path) -> None:
    what = f"{path}: not a classifier checkpoint written by a training stage"
    if not isinstance(ckpt, dict):
        raise DebiaslabError(f"{what} (it holds {describe(ckpt)}, not a dict)")
    if missing := missing_keys(ckpt, CHECKPOINT_KEYS):
        gan = not missing_keys(ckpt, ("config", "state_dict"))
        raise DebiaslabError(f"{what} (missing keys: {', '.join(missing)}"
                             f"{'; it looks like a GAN generator checkpoint' if gan else ''})")
    meta, hparams = ckpt["meta"], ckpt.get("hparams")
    if not (isinstance(ckpt["train"], dict) and isinstance(meta, dict) and isinstance(ckpt["method"], str)
            and isinstance(hparams, (dict, type(None)))):
        raise DebiaslabError(f"{what} (its method, train, hparams or meta entry has the wrong type)")
    for key, default in (("num_outputs", 1), ("image_size", 32)):
        value = meta.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise DebiaslabError(f"{what} (meta {key} is {value!r}, expected a positive integer)")
