"""Latent-space edits at the paper's size: SVM hyperplanes on 10,000 latents, z' for 160,000.

Usage: python benchmarks/latent_edits.py [--n 160000] [--dim 512] [--n-fit 10000] [--seed 0]
Labels come from random planted hyperplanes with 5 % of them flipped (hallucinated labels are noisy).
Prints wall seconds per step; the issue asks for hyperplanes + z' (standard variant) under 30 s on 2 cores.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from debiaslab import latent_space as L


def planted_labels(rng, z: np.ndarray, noise: float = 0.05) -> np.ndarray:
    w = rng.normal(size=z.shape[1])
    h = L.Hyperplane(w / np.linalg.norm(w), rng.normal(scale=0.5))
    return ((h.score(z) > 0) ^ (rng.random(len(z)) < noise)).astype(int)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=160_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--n-fit", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    z_fit = rng.standard_normal((args.n_fit, args.dim), dtype=np.float32)
    z = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    t_lab, g_lab, g2_lab = (planted_labels(rng, z_fit) for _ in range(3))
    times: dict[str, float] = {}
    zp = None

    def timed(step: str, fn):
        start = time.perf_counter()
        out = fn()
        times[step] = time.perf_counter() - start
        return out

    t = timed("fit t", lambda: L.fit_hyperplane(z_fit, t_lab, name="t", seed=args.seed))
    g = timed("fit g", lambda: L.fit_hyperplane(z_fit, g_lab, name="g", seed=args.seed))
    g2 = timed("fit g2", lambda: L.fit_hyperplane(z_fit, g2_lab, name="g2", seed=args.seed))
    t_by_group = timed("fit t|g=0, t|g=1", lambda: tuple(
        L.fit_hyperplane(z_fit[g_lab == k], t_lab[g_lab == k], name=f"t|g={k}", seed=args.seed)
        for k in (0, 1)))
    g_hat = (g.score(z) > 0).astype(int)
    for variant in L.VARIANTS:  # keep only the standard z': seven 160,000 x 512 arrays would be 2.3 GB
        edits = timed(f"z' {variant}", lambda v=variant: L.edit_latents(
            v, z, t=t, g=g, g_hat=g_hat, t_by_group=t_by_group, g2=g2))
        zp = edits["flip"] if variant == "standard" else zp
        del edits

    print(f"{args.n:,} x {args.dim} latents, SVMs on {args.n_fit:,}; held-out accuracy t {t.accuracy:.3f}, "
          f"g {g.accuracy:.3f}, cos(t, g) {t.w @ g.w:+.3f}")
    print(f"standard z': max |Δ target score| {np.abs(t.score(zp) - t.score(z)).max():.1e}, "
          f"max |flipped + original protected score| {np.abs(g.score(zp) + g.score(z)).max():.1e}")
    print(f"{'step':24s} {'seconds':>8s}")
    for step, seconds in times.items():
        print(f"{step:24s} {seconds:8.2f}")
    required = times["fit t"] + times["fit g"] + times["z' standard"]
    print(f"{'hyperplanes + standard':24s} {required:8.2f}   (target < 30 s)")
    print(f"{'all steps':24s} {sum(times.values()):8.2f}")


if __name__ == "__main__":
    main()
