"""benchmarks/pipeline.py: stages, their compute and their wall time from DVC's output."""

import importlib.util
import sys

from conftest import REPO

spec = importlib.util.spec_from_file_location("pipeline_bench", REPO / "benchmarks" / "pipeline.py")
bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench  # dataclasses look their module up there
spec.loader.exec_module(bench)

# as `dvc repro` prints it: tqdm bars joined by \r, the stage's own line on stderr
LOG = [
    (0.0, "Running stage 'check_params':\n"),
    (0.1, "> PYTHONPATH=src python stages/check_params.py --stamp data/params_checked\n"),
    (2.0, "Running stage 'synthesize':\n"),
    (3.0, "synthesize:   0%|          | 0/20000\rsynthesize: 100%|##########| 20000/20000\n"),
    (90.0, "synthesize: done in 86.5 s\n"),
    (92.0, "Running stage 'train_baseline@Smiling':\n"),
    (180.0, "train_baseline Smiling: best epoch 8, val AP 0.9905 on cpu\n"),
    (181.0, "train_baseline: done in 87.0 s\n"),
    (185.0, ""),
]


def test_parse_timestamped_output():
    stages = bench.parse(LOG)
    assert [s.name for s in stages] == ["check_params", "synthesize", "train_baseline@Smiling"]
    assert [s.compute_s for s in stages] == [None, 86.5, 87.0]
    assert [s.wall_s for s in stages] == [2.0, 90.0, 93.0]
    text = bench.table(stages, 185.0)
    assert "3 stages ran; wall 185 s" in text and "compute 174 s" in text


def test_parse_a_saved_log_without_timestamps():
    stages = bench.parse([(None, "".join(line for _, line in LOG))])
    assert [s.compute_s for s in stages] == [None, 86.5, 87.0]
    assert all(s.wall_s is None for s in stages)
