"""Stage train_gan: the generator whose latent space is edited (gan.source: train | checkpoint | pgan |
renderer)."""

import numpy as np

from debiaslab.data import PreparedSplit
from debiaslab.device import resolve_device, seed_everything
from debiaslab.errors import DebiaslabError, stage_main
from debiaslab.gan import (
    check_latent_dim,
    generate,
    generator_config,
    image_grid,
    load_generator,
    sample_latents,
    train_gan,
)
from debiaslab.gan_fidelity import FidelityMonitor, as_metrics, load_judge, summary_line
from debiaslab.io import save_torch
from debiaslab.params import load_params

OUT = "models/gan/generator.pt"
LIVE = "metrics/train/gan"
SAMPLES = "reports/gan/samples"
ORACLE = "models/oracle/model.pt"


def save_grid(generator, p, device, path: str) -> None:
    from PIL import Image

    from debiaslab.io import atomic_path

    images = np.concatenate(list(generate(generator, sample_latents(64, p.latent_dim, seed=12345),
                                          device=device, precision=p.precision)))
    grid = image_grid(images, 16)
    with atomic_path(path) as tmp:  # 2x nearest-neighbour so 32-px faces are visible
        Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(
            tmp, format="PNG")


def fidelity_monitor(p, attrs, train: PreparedSplit, device) -> FidelityMonitor | None:
    """The oracle's per-epoch check of the attribute rates the GAN draws; None on real data (the
    oracle stage wrote a marker, not a model). Draws from no random stream of training."""
    oracle = load_judge(ORACLE, device)
    if oracle is None:
        return None
    names = [*attrs.targets, *attrs.protected]
    return FidelityMonitor(oracle, train.images, targets=attrs.targets, protected=attrs.protected,
                           latent_dim=p.latent_dim, device=device, precision=p.precision,
                           true_labels={n: train.label(n) for n in names})


def trained(p, attrs, device):
    from dvclive import Live

    train = PreparedSplit("data/prepared", "train")
    generator = seed_everything(p.seed)
    monitor = fidelity_monitor(p, attrs, train, device)  # after seeding: deterministic kernels
    report: dict = {}
    with Live(LIVE, dvcyaml=False, save_dvc_exp=False) as live:
        def on_epoch(epoch, logs, ema):
            for key, value in logs.items():
                live.log_metric(f"train/{key}", value)
            if monitor is not None:  # fidelity/{name}_rate and _gap: oracle on G(z) vs on real images
                report.update(monitor(ema))
                for key, value in as_metrics(report).items():
                    live.log_metric(key, round(value, 4))
            if epoch % p.sample_every == 0 or epoch == p.epochs:
                save_grid(ema, p, device, f"{SAMPLES}/epoch_{epoch:03d}.png")
            live.next_step()

        G = train_gan(train.images, p, device=device, generator=generator, on_epoch=on_epoch)
        if report:  # the final epoch's rates and gaps are in the summary already; add the references
            references = as_metrics(report, prefix="", fields=("data", "true"))
            live.summary.setdefault("fidelity", {}).update({k: round(v, 4) for k, v in references.items()})
            print(f"train_gan: fidelity after epoch {p.epochs}, generated vs real train rate (gap) by "
                  f"the oracle: {summary_line(report)}")
    return G


def not_trained(source: str) -> None:
    """The training log a reused generator gets: no epochs, and where it came from."""
    from dvclive import Live

    with Live(LIVE, dvcyaml=False, save_dvc_exp=False) as live:
        live.log_metric("train/epochs", 0)
        live.summary["source"] = source


def from_checkpoint(p, device, size: int):
    from debiaslab.gan import Generator

    G = load_generator(p.checkpoint, device, latent_dim=p.latent_dim)
    if not isinstance(G, Generator):
        raise DebiaslabError(f"{p.checkpoint}: holds a {type(G).__name__}, not a DCGAN of train_gan; "
                             "for a PGAN release use gan.source=pgan")
    if G.image_size != size:
        raise DebiaslabError(f"{p.checkpoint}: the generator draws {G.image_size}-px images, "
                             f"prepare.image_size is {size}")
    return G


def from_release(p, device, size: int):
    from debiaslab.pgan import PretrainedGenerator, load_pgan_generator

    G = PretrainedGenerator(load_pgan_generator(p.checkpoint, device=device), size)
    check_latent_dim(G, p.latent_dim, f"gan.source=pgan ({p.checkpoint})")
    return G


@stage_main("train_gan")
def main() -> None:
    params = load_params("gan", "prepare", "synthesize", "attributes")
    p, size = params["gan"], params["prepare"].image_size
    device = resolve_device(p.device)
    if p.source == "train":
        G = trained(p, params["attributes"], device)
        save_torch(OUT, {"source": "train", "config": generator_config(G), "state_dict": G.state_dict()})
    elif p.source == "checkpoint":  # DVC does not track the file itself: `dvc repro -f train_gan`
        G = from_checkpoint(p, device, size)
        not_trained(f"checkpoint {p.checkpoint}")
        save_torch(OUT, {"source": "checkpoint", "config": generator_config(G),
                         "state_dict": G.state_dict()})
    elif p.source == "renderer":  # SynthFaces' own renderer: nothing to train, its settings to store
        from debiaslab import renderer_gan

        ckpt = renderer_gan.renderer_checkpoint(p.latent_dim, size, params["synthesize"])
        G = renderer_gan.from_checkpoint(ckpt, OUT)
        not_trained("renderer")
        save_torch(OUT, ckpt)
    else:  # a PGAN release (pytorch_GAN_zoo's format), read natively and stored weights-only
        G = from_release(p, device, size)
        not_trained(f"pgan {p.checkpoint}")
        save_torch(OUT, {"source": "pgan", "config": {"latent_dim": G.latent_dim, "image_size": size},
                         "pgan": G.net.release_config, "state_dict": G.net.state_dict()})
    save_grid(G, p, device, f"{SAMPLES}/final.png")
    print(f"train_gan: {p.source} generator, {G.latent_dim}-d latents, {size} px on {device}")


if __name__ == "__main__":
    main()
