"""Train a small BatchNorm-free CNN with the project's Method and fit loop, alone or under
torchrun, and save the weights and validation scores of this process to OUT/rank{R}.pt.

Without BatchNorm (whose statistics are per process, as with DistributedDataParallel) N
processes on parts of each batch must compute what one process computes on the whole batch.
"""

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from debiaslab import distributed
from debiaslab.data import ArrayDataset
from debiaslab.device import seed_everything
from debiaslab.methods.erm import ERM
from debiaslab.params import TrainParams
from debiaslab.train import fit, predict_scores


def main(out: Path) -> None:
    device = distributed.init(torch.device("cpu"))
    # batches of 25: uneven parts of 13 and 12, whose gradients must be weighted by their sizes
    params = TrainParams(precision="fp32", channels_last=False, epochs=2, batch_size=25, lr=1e-3)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (137, 16, 16, 3), dtype=np.uint8)
    y = (images[..., 0].mean((1, 2)) > 127).astype(np.int64)  # learnable from red
    train, val = ArrayDataset(images[:100], y[:100]), ArrayDataset(images[100:], y[100:])
    generator = seed_everything(0)

    def factory():
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(8, 1))

    method = ERM(factory, params, device)
    distributed.broadcast_state(method.modules())
    result = fit(method, train, val, params, generator=generator, progress=False)
    scores = predict_scores(method, val)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"state": method.model.state_dict(), "scores": torch.from_numpy(scores),
                "history": result.history, "world": distributed.world_size()},
               out / f"rank{distributed.rank()}.pt")
    distributed.finish()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
