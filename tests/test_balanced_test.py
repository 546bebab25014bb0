"""The balanced test split: exact cells, its own random streams, the prepared layout, and the
"balanced" section it adds to evaluate's metrics (nothing changes without it)."""

import json
import runpy

import numpy as np
import pytest
from conftest import REPO
from test_stages import assert_one_line_error, run_stage, workdir  # noqa: F401 - shared fixture

from debiaslab.celeba import read_celeba
from debiaslab.data import PreparedSplit
from debiaslab.evaluate import Scored, evaluate_classifier, split_report, threshold_report
from debiaslab.oracle import (
    BALANCED_TAG,
    ORACLE_TAG,
    balanced_attributes,
    jpeg_crop_resize,
    render_balanced,
    render_unbiased,
)
from debiaslab.params import SynthesizeParams
from debiaslab.synth import CHUNK, RENDERED_ATTRIBUTES, render_batch, render_settings

SYNTH = SynthesizeParams(workers=1)
CELL = {"target": "Smiling", "protected": "Eyeglasses"}
TINY = {"prepare": {"image_size": 16}, "balanced_test": {"per_cell": 8}, "synthesize": {"workers": 1},
        "evaluate": {"n_boot": 20}}
OUT = "data/balanced_test"


def cell_counts(attrs):
    return [int(np.sum((attrs["Smiling"] == t) & (attrs["Eyeglasses"] == g))) for t in (0, 1) for g in (0, 1)]


def serial_render(attrs, stream, size=16):
    """The documented seeding, face by face: chunk at ``start`` draws from [*stream, start]."""
    n, out = len(attrs["Smiling"]), []
    render = render_settings(SYNTH)
    for start in range(0, n, CHUNK):
        chunk = {k: v[start:start + CHUNK] for k, v in attrs.items()}
        faces = render_batch(chunk, np.random.default_rng([*stream, start]), **render)
        out += [jpeg_crop_resize(face, SYNTH.jpeg_quality, size) for face in faces]
    return np.stack(out)


def test_exact_cells_in_shuffled_order():
    images, attrs = render_balanced(8, SYNTH, **CELL, image_size=16, seed=0)
    assert images.shape == (32, 16, 16, 3) and images.dtype == np.uint8
    assert sorted(attrs) == sorted(RENDERED_ATTRIBUTES)
    assert cell_counts(attrs) == [8, 8, 8, 8]
    assert 0 < np.sum(np.diff(attrs["Smiling"]) != 0) < 31  # shuffled, not in blocks


def test_other_attributes_are_independent_of_the_cells():
    attrs = balanced_attributes(500, **CELL, seed=0)
    assert cell_counts(attrs) == [500] * 4
    for name in set(RENDERED_ATTRIBUTES) - set(CELL.values()):
        assert abs(attrs[name].mean() - 0.5) < 0.05, name
        for cell_attr in CELL.values():  # 2,000 faces: |r| of independent draws is ~0.02
            assert abs(np.corrcoef(attrs[name], attrs[cell_attr])[0, 1]) < 0.1, (name, cell_attr)


def test_deterministic_for_a_seed_and_different_for_another():
    a_img, a_attrs = render_balanced(8, SYNTH, **CELL, image_size=16, seed=0)
    b_img, b_attrs = render_balanced(8, SYNTH, **CELL, image_size=16, seed=0)
    c_img, c_attrs = render_balanced(8, SYNTH, **CELL, image_size=16, seed=1)
    assert np.array_equal(a_img, b_img)
    assert all(np.array_equal(a_attrs[k], b_attrs[k]) for k in a_attrs)
    assert not np.array_equal(a_img, c_img)
    assert not np.array_equal(a_attrs["Smiling"], c_attrs["Smiling"])


def test_workers_give_the_serial_pixels():
    """Chunks are the unit of seeding: two processes over 2 chunks give the serial render's bytes."""
    images, attrs = render_balanced(20, SYNTH, **CELL, image_size=16, seed=0, workers=2)
    assert np.array_equal(images, serial_render(attrs, (0, BALANCED_TAG, 2)))


def test_oracle_set_keeps_its_streams_and_differs_from_the_balanced_split():
    """The shared path must not move the oracle's faces (its trained model depends on them), and
    the balanced split must not reuse them."""
    oracle_img, oracle_attrs = render_unbiased(32, SYNTH, image_size=16, seed=0)
    assert np.array_equal(oracle_img, serial_render(oracle_attrs, (0, ORACLE_TAG, 2)))
    images, attrs = render_balanced(8, SYNTH, **CELL, image_size=16, seed=0)
    assert not np.array_equal(attrs["Bangs"], oracle_attrs["Bangs"])
    same = (images[:, None] == oracle_img[None]).all(axis=(2, 3, 4))
    assert not same.any()


def test_unrenderable_attribute_or_one_attribute_twice_is_refused():
    from debiaslab.errors import DebiaslabError

    with pytest.raises(DebiaslabError, match="does not draw 'Male'.*balanced_test.enabled: false"):
        balanced_attributes(8, target="Smiling", protected="Male", seed=0)
    with pytest.raises(DebiaslabError, match="target other than the protected"):
        balanced_attributes(8, target="Smiling", protected="Smiling", seed=0)


def shape(tree):
    """The nested keys of a metrics section (values left out)."""
    return {k: shape(v) for k, v in tree.items()} if isinstance(tree, dict) else None


def scored(rng, n):
    y, g = rng.integers(0, 2, n), rng.integers(0, 2, n)
    return Scored(y, np.clip(0.5 * y + 0.2 * g + rng.normal(0, 0.3, n), 0, 1), {"Eyeglasses": g})


def test_evaluate_adds_a_balanced_section_shaped_like_test():
    rng = np.random.default_rng(0)
    val, test, balanced = scored(rng, 300), scored(rng, 400), scored(rng, 200)
    args = (val.y, val.s, test.y, test.s, test.groups)
    plain = evaluate_classifier(*args, n_boot=30, seed=0)
    both = evaluate_classifier(*args, n_boot=30, seed=0, balanced=balanced)
    assert list(plain) == ["threshold", "val", "test", "n_test", "n_boot"]
    assert list(both) == [*plain, "balanced", "n_balanced"]
    assert json.dumps({k: both[k] for k in plain}) == json.dumps(plain)  # test untouched
    assert shape(both["balanced"]) == shape(both["test"]) and both["n_balanced"] == 200
    thresholds = threshold_report(val.y, val.s)  # the val thresholds, not the balanced split's own
    assert both["balanced"] == split_report(*balanced, thresholds, n_boot=30, seed=0, kl_bins=50)


def in_process(root, monkeypatch, capsys, script: str, *args: str) -> str:
    """A stage's main run in this process (each torch start-up of a subprocess costs ~10 s), with
    the params.yaml the last run_stage wrote; returns what it printed."""
    monkeypatch.chdir(root)
    capsys.readouterr()
    runpy.run_path(str(REPO / "stages" / script), run_name="stage")["main"](list(args))
    return capsys.readouterr().out


def evaluate_in_process(root, monkeypatch, capsys) -> tuple[dict, str]:
    printed = in_process(root, monkeypatch, capsys, "evaluate.py", "baseline", "Smiling")
    return json.loads((root / "metrics/evaluate/baseline/Smiling.json").read_text()), printed


def test_stage_writes_a_prepared_split_then_evaluate_reads_it(workdir, synthfaces_dir,  # noqa: F811
                                                              monkeypatch, capsys):
    proc = run_stage(workdir, "balanced_test.py", params=TINY)
    assert proc.returncode == 0, proc.stderr
    assert "cells {'Smiling=0,Eyeglasses=0': 8" in proc.stdout
    split = PreparedSplit(workdir / OUT, "test")
    assert split.images.shape == (32, 16, 16, 3)
    assert list(split.labels.columns) == ["image", *read_celeba(synthfaces_dir).attribute_names]
    assert cell_counts({a: split.label(a) for a in CELL.values()}) == [8, 8, 8, 8]
    first = {p.name: p.read_bytes() for p in (workdir / OUT).iterdir()}
    assert run_stage(workdir, "balanced_test.py", params=TINY).returncode == 0
    assert {p.name: p.read_bytes() for p in (workdir / OUT).iterdir()} == first  # a rerun: same bytes

    in_process(workdir, monkeypatch, capsys, "train_baseline.py", "Smiling")
    report, printed = evaluate_in_process(workdir, monkeypatch, capsys)
    assert "DEO(Eyeglasses) test " in printed and ", balanced " in printed
    assert shape(report["balanced"]) == shape(report["test"]) and report["n_balanced"] == 32

    # disabled (real data): the folder holds the marker only, and evaluate reports test alone
    proc = run_stage(workdir, "balanced_test.py", params={**TINY, "balanced_test": {"enabled": False}})
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in (workdir / OUT).iterdir()] == ["disabled.json"]
    assert json.loads((workdir / OUT / "disabled.json").read_text()) == {"enabled": False}
    report, printed = evaluate_in_process(workdir, monkeypatch, capsys)
    assert "balanced" not in report and "n_balanced" not in report and ", balanced" not in printed


def test_stage_on_attributes_synthfaces_does_not_draw(workdir):  # noqa: F811
    proc = run_stage(workdir, "balanced_test.py", params={**TINY, "attributes": {"protected": ["Male"]}})
    assert_one_line_error(proc, "SynthFaces does not draw 'Male'", "set balanced_test.enabled: false")
