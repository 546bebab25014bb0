"""Where training runs diverge between machines, and what pinning each source costs.

Usage: python benchmarks/reproducibility.py [--steps 120] [--images 4096]

Trains the baseline's small CNN (seed 0, the same batches) in a fresh process per setting and
compares each result with the default's: the trained weights (bit for bit, and the largest
difference), the validation scores, and the speed. A setting changes one thing a user's machine
may differ in, before torch loads:

- threads: torch's intra-op thread count (OMP_NUM_THREADS);
- instruction set: ``ONEDNN_MAX_CPU_ISA`` and ``ATEN_CPU_CAPABILITY`` cap the kernels oneDNN and
  ATen dispatch to, as on a machine without AMX, or without AVX-512;
- precision: fp32 instead of bf16 autocast, and oneDNN switched off (ATen's own convolutions).

Needs ``data/prepared`` (run the pipeline's ``prepare`` stage first).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
# name: (environment, precision, oneDNN on, the setting it is compared with)
SETTINGS = {
    "default (bf16, 2 threads)": ({}, "bf16", True, None),
    "bf16, 1 thread": ({"OMP_NUM_THREADS": "1"}, "bf16", True, "default (bf16, 2 threads)"),
    "bf16, no AMX": ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, "bf16", True, "default (bf16, 2 threads)"),
    "bf16, AVX2 kernels": (AVX2, "bf16", True, "default (bf16, 2 threads)"),
    "fp32": ({}, "fp32", True, "default (bf16, 2 threads)"),
    "fp32, AVX2 kernels": (AVX2, "fp32", True, "fp32"),
    "fp32, 1 thread": ({"OMP_NUM_THREADS": "1"}, "fp32", True, "fp32"),
    "fp32 no oneDNN": ({}, "fp32", False, "fp32"),
    "fp32 no oneDNN, AVX2 kernels": ({**AVX2, "MKL_CBWR": "AVX2"}, "fp32", False, "fp32 no oneDNN"),
}


def train(steps: int, images: int, precision: str, onednn: bool) -> dict:
    """One training run in this process: weights' digest, validation scores, images per second."""
    import numpy as np
    import torch

    from debiaslab.data import ArrayDataset, PreparedSplit
    from debiaslab.device import seed_everything
    from debiaslab.params import TrainParams
    from debiaslab.train import make_method, predict_scores

    torch.backends.mkldnn.enabled = onednn
    train, val = PreparedSplit("data/prepared", "train"), PreparedSplit("data/prepared", "val")
    data = ArrayDataset(train.images[:images], train.label("Smiling")[:images])
    params = TrainParams(precision=precision, channels_last=precision == "bf16")
    generator = seed_everything(0)
    method = make_method("erm", 1, params, torch.device("cpu"), image_size=data.images.shape[1])
    done, start = 0, time.perf_counter()
    while done < steps:
        order = torch.randperm(len(data), generator=generator).numpy()
        for batch in data.batches(params.batch_size, method.device, order=order, generator=generator,
                                  channels_last=params.channels_last):
            method.update(batch)
            done += 1
            if done == steps:
                break
    seconds = time.perf_counter() - start
    weights = b"".join(v.detach().float().numpy().tobytes() for v in method.model.state_dict().values())
    scores = predict_scores(method, ArrayDataset(val.images, val.label("Smiling")))
    return {"sha": hashlib.sha256(weights).hexdigest()[:16], "img_s": steps * params.batch_size / seconds,
            "weights": np.frombuffer(weights, np.float32).tolist(), "scores": scores.tolist(),
            "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--worker", nargs=2, metavar=("PRECISION", "ONEDNN"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(train(args.steps, args.images, args.worker[0], args.worker[1] == "1")))
        return
    import numpy as np

    results = {}
    for name, (env, precision, onednn, _) in SETTINGS.items():
        cmd = [sys.executable, __file__, "--steps", str(args.steps), "--images", str(args.images),
               "--worker", precision, "1" if onednn else "0"]
        out = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, check=True)
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"small CNN, {args.steps} steps of batch 128 on {args.images} SynthFaces, seed 0")
    print(f"{'setting':30s} {'compared with':26s} {'identical':>9s} {'max |Δw|':>9s} "
          f"{'max |Δscore|':>12s} {'img/s':>6s}")
    for name, (_, _, _, reference) in SETTINGS.items():
        r, ref = results[name], results[reference or name]
        w, s = np.array(r["weights"]), np.array(r["scores"])
        same = "yes" if r["sha"] == ref["sha"] else "no"
        print(f"{name:30s} {reference or '-':26s} {same:>9s} {np.abs(w - ref['weights']).max():9.2e} "
              f"{np.abs(s - ref['scores']).max():12.2e} {r['img_s']:6.0f}")


if __name__ == "__main__":
    main()
