"""Stage leakage: dataset, natural and model leakage of the protected column.

λ_D from ground-truth label vectors, the natural-leakage curve from randomly perturbed labels,
λ_M from each multi-label model's logits on the same images, and Δ = λ_M − λ_D(F1 of the model)
(Wang et al., ICCV 2019). Images are the prepared train/val/test splits (attacker train, model
selection, test), capped at `leakage.max_rows` rows each. The protected column is
`multilabel.protected`, or the first of `attributes.protected` when that is null. The masks
figure shows test images of each protected value above what each model that masks its input
(image_adversarial) lets its classifier see.
"""

import dataclasses

import numpy as np

from debiaslab import leakage as L
from debiaslab.device import resolve_device, seed_everything
from debiaslab.errors import stage_main
from debiaslab.io import save_figure, write_json
from debiaslab.params import load_params
from debiaslab.train import load_checkpoint

PREPARED = "data/prepared"
SHOWN = 4  # test images of each protected value in the masks figure


@stage_main("leakage")
def main() -> None:
    params = load_params("leakage", "attributes", "multilabel", "methods")
    p = params["leakage"]
    seed_everything(p.seed)
    attacker = {k: getattr(p, k) for k in ("epochs", "batch_size", "lr", "weight_decay")}
    splits, labels, protected, y, g, split = L.attack_data(
        PREPARED, params["multilabel"].protected, params["attributes"].protected)
    rows = L.cap_rows(split, max_rows=p.max_rows, seed=p.seed)

    curve = L.natural_leakage_curve(y[rows], g[rows], split[rows], p_grid=p.p_grid,
                                    rounds=p.rounds, seed=p.seed, **attacker)
    at_zero = [c for c in curve if c["p"] == 0.0]
    dataset = (at_zero[0] if at_zero else
               L.leakage(y[rows], g[rows], split[rows], rounds=p.rounds, seed=p.seed, **attacker))
    models, masked = {}, {}
    shown = np.concatenate([np.flatnonzero(splits[2].label(protected) == v)[:SHOWN] for v in (0, 1)])
    images = splits[2].images[shown].astype(np.float32) / 127.5 - 1  # (n, H, W, 3) in [-1, 1]
    outputs = {}
    for name in params["methods"].multilabel:
        method, meta = load_checkpoint(f"models/multilabel/{name}/model.pt", resolve_device("auto"))
        outputs[name] = L.model_outputs(method, splits, meta["labels"])
        if hasattr(method.model, "masked"):  # what its classifier sees
            masked[name] = masked_images(method, images)
    leaks = L.leakages([logits[rows] for logits, _, _ in outputs.values()], g[rows], split[rows],
                       rounds=p.rounds, seed=p.seed, **attacker)
    for (name, (_, f1s, m_ap)), leak in zip(outputs.items(), leaks, strict=True):
        models[name] = row = L.model_leakage(leak, curve, f1s=f1s, m_ap=m_ap,
                                             f1_threshold=p.f1_threshold)
        print(f"leakage {name}: F1 {row['macro_F1']:.3f} ({p.f1_threshold} thresholds), "
              f"λ_M {row['model_leakage']['mean']:.3f} ± {row['model_leakage']['std']:.3f}, "
              f"λ_D(F1) {row['natural_leakage_at_F1']:.3f}, Δ {row['amplification']:+.3f}")
    report = {"protected": protected, "labels": labels, "attacker": dataclasses.asdict(p),
              "dataset_leakage": {"mean": dataset["mean"], "std": dataset["std"]},
              "natural_curve": curve, "models": models}
    write_json("metrics/leakage.json", report)
    save_figure(L.plot_natural_leakage(curve, models, f"leakage of {protected}"),
                "reports/leakage/natural_leakage.png", dpi=110)
    title = (f"test images ({protected} = 0, then 1) and what each masking model's classifier sees"
             if masked else "no model of methods.multilabel masks its input")
    save_figure(L.plot_masked_images(images, masked, title),
                "reports/leakage/masks.png", dpi=110)
    print(f"leakage: λ_D = {dataset['mean']:.3f} ± {dataset['std']:.3f} over {p.rounds} rounds")


def masked_images(method, images: np.ndarray) -> np.ndarray:
    """What the model's classifier sees of ``images`` (n, H, W, 3) in [-1, 1], in the same layout."""
    import torch  # here, not above: the debiaslab import must come first (src/debiaslab/threads.py)

    method.model.eval()
    with torch.no_grad():
        x = torch.as_tensor(images).permute(0, 3, 1, 2).to(method.device)
        return method.model.masked(x).float().cpu().permute(0, 2, 3, 1).numpy()


if __name__ == "__main__":
    main()
