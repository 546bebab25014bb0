"""Stage prepare: crop, resize and pack data.root into data/prepared (uint8 .npy per split)."""

from debiaslab.celeba import read_celeba
from debiaslab.errors import stage_main
from debiaslab.params import load_params
from debiaslab.prepare import prepare

OUT = "data/prepared"


@stage_main("prepare")
def main() -> None:
    params = load_params("data", "prepare")
    p = params["prepare"]
    meta = prepare(read_celeba(params["data"].root), OUT, image_size=p.image_size,
                   workers=p.workers)
    print(f"prepare: {meta['counts']} at {p.image_size}px from {meta['source']}")


if __name__ == "__main__":
    main()
