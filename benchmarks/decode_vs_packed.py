"""Training throughput: a plain PyTorch loop that decodes JPEGs every epoch vs the project's loop.

Usage: python benchmarks/decode_vs_packed.py [--n 4096] [--epochs 2] [--repeats 3]
           [--workers 2] [--threads 0] [--json out.json]

Trains small_cnn (default TrainParams: width 16, batch 128, Adam, BCE on Smiling) on the first
``--n`` training images of data/synthfaces and reports images/s for four configurations:

  decode fp32 NCHW        the "plain" loop: a Dataset that opens each JPEG with PIL, crops and
                          resizes it (prepare's own crop_resize, so the pixels match the packed
                          array), ToTensor + Normalize + random hflip, DataLoader(shuffle,
                          num_workers, persistent_workers), fp32 NCHW model, a standard for loop
  decode bf16 CL          the same loop with bf16 autocast and channels_last
  packed fp32 NCHW        the project's loop (ArrayDataset.batches over data/prepared/train.npy,
                          make_method("erm").update) with precision=fp32, channels_last=False
  packed bf16 CL          the project's loop with default TrainParams: the real code path

Each configuration runs one untimed warm-up epoch, then ``--epochs`` timed ones. The whole list
runs ``--repeats`` times, interleaved, so background load hits every configuration alike; the
median over repeats (and the range) is reported with its ratio to the plain loop.
``--threads N`` sets torch's intra-op threads (0: torch's default, one per core); on a shared
machine compare both, since OpenMP threads that wait for a descheduled sibling can dominate
every configuration.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from debiaslab.celeba import IMAGE_DIR
from debiaslab.data import ArrayDataset, PreparedSplit
from debiaslab.device import autocast
from debiaslab.models import build_model
from debiaslab.params import TrainParams
from debiaslab.prepare import crop_resize
from debiaslab.train import make_method

TARGET = "Smiling"
CONFIGS = [("decode", "fp32", False), ("decode", "bf16", True),
           ("packed", "fp32", False), ("packed", "bf16", True)]


class JpegDataset(Dataset):
    """What a typical researcher writes: decode, crop, resize and normalise in __getitem__."""

    def __init__(self, image_dir: Path, names: list[str], labels: np.ndarray, size: int):
        self.image_dir, self.names, self.labels, self.size = image_dir, names, labels, size
        self.transform = transforms.Compose([
            transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3),
            transforms.RandomHorizontalFlip()])

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int):
        pixels = crop_resize(self.image_dir / self.names[i], self.size)  # uint8 (S, S, 3)
        # copy: ToTensor warns on the read-only array PIL hands out
        return self.transform(pixels.copy()), torch.tensor(float(self.labels[i]))


def timed(epoch, epochs: int, n: int) -> float:
    """One untimed warm-up epoch (oneDNN kernel choice, worker start-up), then images/s."""
    epoch()
    start = time.perf_counter()
    for _ in range(epochs):
        epoch()
    return epochs * n / (time.perf_counter() - start)


def run_decode(data: JpegDataset, params: TrainParams, epochs: int, workers: int) -> float:
    torch.manual_seed(0)
    model = build_model(1, params)
    if params.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.lr)
    loader = DataLoader(data, batch_size=params.batch_size, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0)

    def epoch() -> None:
        for x, y in loader:
            if params.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(torch.device("cpu"), params.precision):
                logits = model(x).float().squeeze(1)
            loss = F.binary_cross_entropy_with_logits(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()

    model.train()
    return timed(epoch, epochs, len(data))  # the workers stop when the loader is freed


def run_packed(data: ArrayDataset, params: TrainParams, epochs: int) -> float:
    """The inner loop of debiaslab.train.fit (without its per-epoch validation)."""
    torch.manual_seed(0)
    method = make_method("erm", 1, params, torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)

    def epoch() -> None:
        order = method.epoch_order(data, generator)
        for batch in data.batches(params.batch_size, method.device, order=order,
                                  generator=generator, hflip=params.hflip,
                                  channels_last=params.channels_last):
            method.update(batch)

    method.model.train()
    return timed(epoch, epochs, len(data))

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("data/synthfaces"))
    ap.add_argument("--prepared", type=Path, default=Path("data/prepared"))
    ap.add_argument("--n", type=int, default=4096, help="first N training images")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per configuration")
    ap.add_argument("--repeats", type=int, default=3, help="passes over the configuration list")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the plain loop")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    split = PreparedSplit(args.prepared, "train")
    images = split.images[:args.n]
    size = images.shape[1]
    labels = split.label(TARGET)[:args.n]
    names = split.labels["image"].iloc[:args.n].tolist()
    jpegs = JpegDataset(args.root / IMAGE_DIR, names, labels, size)
    for i in (0, len(names) - 1):  # both paths must see the same pixels
        if not np.array_equal(crop_resize(jpegs.image_dir / names[i], size), images[i]):
            raise SystemExit(f"{names[i]}: decoded pixels differ from {split.path} (re-prepare?)")
    packed = ArrayDataset(images, labels)

    load_start = os.getloadavg()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, loadavg {load_start[0]:.2f} {load_start[1]:.2f} "
          f"{load_start[2]:.2f}")
    print(f"{len(names)} images {size}px, target {TARGET}, batch {TrainParams.batch_size}, "
          f"small_cnn width {TrainParams.width}, {args.workers} DataLoader workers, "
          f"1 warm-up + {args.epochs} timed epochs, {args.repeats} repeats")
    runs: dict[str, list[float]] = {}
    for rep in range(args.repeats):
        for source, precision, channels_last in CONFIGS:
            params = dataclasses.replace(TrainParams(), precision=precision,
                                         channels_last=channels_last)
            name = f"{source} {precision} {'CL' if channels_last else 'NCHW'}"
            ips = (run_decode(jpegs, params, args.epochs, args.workers) if source == "decode"
                   else run_packed(packed, params, args.epochs))
            runs.setdefault(name, []).append(ips)
            print(f"  repeat {rep + 1}: {name:18s} {ips:7.0f} img/s  "
                  f"(loadavg {os.getloadavg()[0]:.2f})", flush=True)

    base = statistics.median(runs["decode fp32 NCHW"])
    print("median over repeats:")
    results = []
    for name, values in runs.items():
        med = statistics.median(values)
        results.append({"config": name, "img_per_s": values, "median": med, "ratio": med / base})
        print(f"  {name:18s} {med:7.0f} img/s  {med / base:5.2f}x  "
              f"(range {min(values):.0f}-{max(values):.0f})")
    load_end = os.getloadavg()
    print(f"loadavg at end {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({
            "torch": torch.__version__, "threads": torch.get_num_threads(), "n": len(names),
            "epochs": args.epochs, "repeats": args.repeats, "workers": args.workers,
            "loadavg_start": load_start, "loadavg_end": load_end, "results": results}, indent=1))


if __name__ == "__main__":
    main()
