"""Stage leakage_balanced: leakage of the models trained on α-balanced data (Wang et al.'s Table 3).

For each α of `balanced_subsets.alphas`, every split is cut to its α-balanced subset (per label and
overall, the protected groups differ in count by at most a factor α); on those images, capped at
`leakage.max_rows` per split, the attacker measures the labels' leakage λ_D, the natural-leakage
curve, and the leakage λ_M of each `methods.multilabel` model trained on that α's training
subset (stage train_multilabel_balanced), with Δ = λ_M − λ_D(F1). mAP and F1 are on the whole test
split. The plot puts each α beside the original set (metrics/leakage.json, stage leakage): the
paper's claim is that λ_M stays well above λ_D as α approaches 1.
"""

import json

import numpy as np

from debiaslab import leakage as L
from debiaslab.balanced_subsets import alpha_balanced
from debiaslab.device import resolve_device, seed_everything
from debiaslab.errors import DebiaslabError, stage_main
from debiaslab.io import save_figure, write_json
from debiaslab.params import load_params
from debiaslab.train import load_checkpoint

PREPARED = "data/prepared"
ORIGINAL = "metrics/leakage.json"


@stage_main("leakage_balanced")
def main() -> None:
    params = load_params("leakage", "attributes", "multilabel", "methods", "balanced_subsets")
    p, balanced = params["leakage"], params["balanced_subsets"]
    seed_everything(p.seed)
    attacker = {k: getattr(p, k) for k in ("epochs", "batch_size", "lr", "weight_decay",
                                           "rounds", "seed")}
    splits, labels, protected, y, g, split = L.attack_data(
        PREPARED, params["multilabel"].protected, params["attributes"].protected)
    results = {}
    for alpha in map(str, balanced.alphas):  # as DVC writes ${item.alpha}: the folders' names
        subset = np.concatenate([np.flatnonzero(split == k)[alpha_balanced(
            y[split == k], g[split == k], alpha=float(alpha), seed=balanced.seed)] for k in range(3)])
        rows = subset[L.cap_rows(split[subset], max_rows=p.max_rows, seed=p.seed)]
        curve = L.natural_leakage_curve(y[rows], g[rows], split[rows], p_grid=p.p_grid, **attacker)
        at_zero = [c for c in curve if c["p"] == 0.0]
        dataset = at_zero[0] if at_zero else L.leakage(y[rows], g[rows], split[rows], **attacker)
        outputs = {}
        for name in params["methods"].multilabel:
            path = f"models/multilabel_balanced/alpha_{alpha}/{name}/model.pt"
            method, meta = load_checkpoint(path, resolve_device("auto"))
            outputs[name] = (*L.model_outputs(method, splits, meta["labels"]), meta.get("train_rows"))
        leaks = L.leakages([logits[rows] for logits, *_ in outputs.values()], g[rows], split[rows],
                           **attacker)
        models = {}
        for (name, (_, f1s, m_ap, train_rows)), leak in zip(outputs.items(), leaks, strict=True):
            models[name] = L.model_leakage(leak, curve, f1s=f1s, m_ap=m_ap, f1_threshold=p.f1_threshold)
            models[name]["train_images"] = train_rows
        results[alpha] = {"images": {s: int((split[subset] == k).sum()) for k, s in enumerate(L.SPLITS)},
                          "dataset_leakage": {"mean": dataset["mean"], "std": dataset["std"]},
                          "natural_curve": curve, "models": models}
        print(f"leakage_balanced α = {alpha}: {len(subset)} images, λ_D {dataset['mean']:.3f}; "
              + "; ".join(f"{n} λ_M {m['model_leakage']['mean']:.3f} Δ {m['amplification']:+.3f}"
                          for n, m in models.items()))
    original = read_original(params["methods"].multilabel)
    write_json("metrics/leakage_balanced.json", {"protected": protected, "labels": labels,
                                                 "alphas": results})
    save_figure(L.plot_balanced_subsets(list(results), results, original,
                                        f"leakage of {protected}: α-balanced training sets"),
                "reports/leakage/balanced_subsets.png", dpi=110)


def read_original(methods: list[str]) -> dict:
    """The leakage stage's results on the whole data: the plot's 'original' point."""
    try:
        original = json.loads(open(ORIGINAL).read())
    except (OSError, ValueError) as err:
        raise DebiaslabError(f"{ORIGINAL}: cannot read it ({err}); run the leakage stage") from None
    if missing := [m for m in methods if m not in original.get("models", {})]:
        raise DebiaslabError(f"{ORIGINAL}: no results for {', '.join(missing)}; run the leakage stage")
    return original


if __name__ == "__main__":
    main()
