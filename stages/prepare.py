"""Stage prepare: crop, resize and pack data.root into data/prepared (uint8 .npy per split).

data.root is a CelebA-format folder, or, with data.table set, a folder holding a multi-label table
(debiaslab.table; COCO's is written by debiaslab.coco_import). It is only read.
"""

from debiaslab.celeba import read_celeba
from debiaslab.errors import stage_main
from debiaslab.params import load_params
from debiaslab.prepare import prepare
from debiaslab.table import pack_table, read_table

OUT = "data/prepared"


@stage_main("prepare")
def main() -> None:
    params = load_params("data", "prepare")
    p, data = params["prepare"], params["data"]
    if data.table is None:
        meta = prepare(read_celeba(data.root), OUT, image_size=p.image_size, workers=p.workers)
    else:
        meta = pack_table(read_table(data.root, data.table), OUT, image_size=p.image_size,
                          workers=p.workers)
    print(f"prepare: {meta['counts']} at {p.image_size}px from {meta['source']}")


if __name__ == "__main__":
    main()
