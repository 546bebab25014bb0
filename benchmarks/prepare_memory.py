"""Peak memory of `prepare` against dataset size: it must stay flat (streaming writes).

Builds CelebA-format folders of N images by hard-linking the images of an existing SynthFaces
folder (cheap: no rendering, no copying), then runs prepare on each in a fresh process and
prints wall time and peak RSS of the main process and of its worker processes.

Usage: python benchmarks/prepare_memory.py [--source data/synthfaces] [--sizes 20000 202599]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from debiaslab.celeba import ATTR_FILE, IMAGE_DIR, PARTITION_FILE, read_celeba
from debiaslab.synth import image_name, partition_ids, write_attr_file


def build_folder(source: Path, out: Path, n: int) -> None:
    index = read_celeba(source)
    (out / IMAGE_DIR).mkdir(parents=True)
    m = len(index.image_names)
    names = [image_name(i) for i in range(n)]
    for i, name in enumerate(names):
        os.link(index.image_path(index.image_names[i % m]), out / IMAGE_DIR / name)
    labels = {a: index.labels[[i % m for i in range(n)], k] for k, a in enumerate(index.attribute_names)}
    write_attr_file(out / ATTR_FILE, names, labels)
    part = partition_ids(n, [0.8, 0.1, 0.1])
    (out / PARTITION_FILE).write_text("".join(f"{a} {p}\n" for a, p in zip(names, part, strict=True)))


# Worker memory is sampled with psutil while prepare runs: getrusage's RUSAGE_CHILDREN would
# report the parent's size, since a child's high-water mark includes the forked copy it was
# for an instant before exec'ing a fresh interpreter.
CHILD = """
import resource, sys, threading, time
import psutil
from debiaslab.celeba import read_celeba
from debiaslab.prepare import prepare
peak, done = [0], threading.Event()
def watch():
    me = psutil.Process()
    while not done.is_set():
        for c in me.children(recursive=True):
            try:
                peak[0] = max(peak[0], c.memory_info().rss)
            except psutil.Error:
                pass
        time.sleep(0.05)
threading.Thread(target=watch, daemon=True).start()
t = time.perf_counter()
prepare(read_celeba(sys.argv[1]), sys.argv[2], image_size=int(sys.argv[3]), workers=2, progress=False)
done.set()
self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{time.perf_counter() - t:.1f} {self_kb} {peak[0] // 1024}")
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default="data/synthfaces")
    ap.add_argument("--sizes", type=int, nargs="+", default=[20000, 202599])
    ap.add_argument("--image-size", type=int, default=32)
    args = ap.parse_args()
    print(f"prepare at {args.image_size}px, 2 workers; peak RSS in MiB")
    for n in args.sizes:
        # inside data/ (git-ignored) and on the same filesystem as the source, for hard links
        with tempfile.TemporaryDirectory(dir="data", prefix=".prepare-memory-") as tmp:
            folder = Path(tmp) / "celeba"
            t = time.perf_counter()
            build_folder(Path(args.source), folder, n)
            built = time.perf_counter() - t
            out = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(Path(tmp) / "prep"),
                                  str(args.image_size)], capture_output=True, text=True, check=True)
            seconds, self_kb, child_kb = out.stdout.split()
            print(f"  {n:7d} images: {float(seconds):6.1f} s ({n / float(seconds):5.0f} img/s), "
                  f"main {int(self_kb) / 1024:6.0f}, largest worker {int(child_kb) / 1024:6.0f} "
                  f"(folder built in {built:.0f} s)")
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
