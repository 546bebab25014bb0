"""The one training loop: epochs of ``method.update``, best epoch by validation AP, checkpoint."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import metrics
from .data import ArrayDataset
from .errors import DebiaslabError
from .io import save_torch
from .methods import METHODS, Method
from .models import build_model


@dataclass
class FitResult:
    best_epoch: int
    best_val_ap: float
    history: list[dict] = field(default_factory=list)


@torch.inference_mode()
def predict_scores(method: Method, data: ArrayDataset, batch_size: int = 512) -> np.ndarray:
    """Sigmoid scores, float32, in the dataset's order."""
    method.model.eval()
    out = [torch.sigmoid(method.predict(b.x)).cpu()
           for b in data.batches(batch_size, method.device,
                                 channels_last=method.params.channels_last)]
    scores = torch.cat(out).numpy()
    return scores[:, 0] if scores.ndim == 2 and scores.shape[1] == 1 else scores


def selection_score(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Validation AP (mean over columns for multi-label targets)."""
    if y_true.ndim == 1:
        return metrics.average_precision(y_true, scores)
    return float(np.nanmean([metrics.average_precision(y_true[:, k], scores[:, k])
                             for k in range(y_true.shape[1])]))


def make_method(name: str, num_outputs: int, params, device: torch.device) -> Method:
    if name not in METHODS:
        raise DebiaslabError(f"unknown method {name!r} (valid: {', '.join(METHODS)})")
    return METHODS[name](build_model(num_outputs, params), params, device)


def fit(method: Method, train: ArrayDataset, val: ArrayDataset, params, *,
        generator: torch.Generator, live=None, progress: bool = True) -> FitResult:
    """Train for ``params.epochs``; keep the weights of the epoch with the best validation AP."""
    for name, data in (("train", train), ("val", val)):
        if len(np.unique(data.y)) < 2:
            raise DebiaslabError(f"the {name} split has only one class of the target; "
                                 "a classifier needs both")
    result = FitResult(best_epoch=-1, best_val_ap=-np.inf)
    best_state = None
    for epoch in range(params.epochs):
        method.model.train()
        batches = train.batches(params.batch_size, method.device, shuffle=True,
                                generator=generator, hflip=params.hflip,
                                channels_last=params.channels_last)
        n_batches = -(-len(train) // params.batch_size)
        losses = [method.update(b)["loss"] for b in tqdm(
            batches, total=n_batches, desc=f"epoch {epoch + 1}/{params.epochs}",
            unit="batch", disable=not progress, leave=False)]
        val_ap = selection_score(val.y, predict_scores(method, val))
        row = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_AP": val_ap}
        result.history.append(row)
        if live is not None:
            live.log_metric("train/loss", row["train_loss"])
            live.log_metric("val/AP", val_ap)
            live.next_step()
        if val_ap > result.best_val_ap:
            result.best_epoch, result.best_val_ap = epoch + 1, val_ap
            best_state = copy.deepcopy(method.model.state_dict())
    method.model.load_state_dict(best_state)
    return result


def save_checkpoint(path: str | Path, method: Method, params, **meta) -> None:
    """State dict plus what is needed to rebuild the model; loadable with weights_only=True."""
    config = {k: v for k, v in vars(params).items() if k != "weights"}
    save_torch(path, {"state_dict": method.model.state_dict(), "method": method.name,
                      "train": config, "meta": meta})


def load_checkpoint(path: str | Path, device: torch.device) -> tuple[Method, dict]:
    from .params import TrainParams

    path = Path(path)
    if not path.is_file():
        raise DebiaslabError(f"{path}: checkpoint not found (run the training stage)")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # noqa: BLE001 - an unreadable checkpoint is an input error
        raise DebiaslabError(f"{path}: not a readable checkpoint ({err})") from None
    params = TrainParams(**ckpt["train"])
    num_outputs = ckpt["meta"].get("num_outputs", 1)
    method = make_method(ckpt["method"], num_outputs, params, device)
    method.model.load_state_dict(ckpt["state_dict"])
    return method, ckpt["meta"]
