"""dvc.yaml declares, for every stage, exactly the library modules its script imports
(transitively), so `dvc repro` reruns a stage whenever code it runs has changed, and only then.
The lists are written by `python -m debiaslab.dvc_deps`."""

import re

import yaml
from conftest import REPO

from debiaslab.dvc_deps import closure, expected_code_deps, rewrite

PACKAGE = REPO / "src" / "debiaslab"


def test_every_stage_depends_on_exactly_the_code_it_runs():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    expected = expected_code_deps(REPO)
    differ = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        script = re.search(r"stages/\w+\.py", body["cmd"]).group(0)
        assert script in body["deps"], f"{name}: {script} is not a dependency"
        code = sorted(d for d in body["deps"] if d.startswith("src/") and "${" not in d)
        if code != expected[name]:
            differ[name] = {"missing": sorted(set(expected[name]) - set(code)),
                            "extra": sorted(set(code) - set(expected[name]))}
    assert not differ, f"run `python -m debiaslab.dvc_deps`: {differ}"


def test_a_stage_that_trains_a_listed_method_depends_on_its_module_and_hparams_only():
    """Editing one method's module or its hparams entry reruns that method's stages, no others."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    trainers = {name: stage for name, stage in stages.items()
                if "${methods." in str(stage.get("foreach", "")) + str(stage.get("matrix", ""))}
    assert {"train_fair", "train_multilabel", "train_multilabel_balanced", "train_debias", "train_debias_be",
            "train_debias_faces", "train_debias_faces_be", "evaluate_fair"} == set(trainers)
    for name, stage in trainers.items():
        body = stage.get("do", stage)
        item = "${item}" if "foreach" in stage else "${item.method}"
        if name == "evaluate_fair":  # loads a checkpoint: its model file is the dependency
            assert not any("methods/${" in d for d in body["deps"])
            continue
        assert f"src/debiaslab/methods/{item}.py" in body["deps"], name
        assert f"hparams.{item}" in body["params"] and "hparams" not in body["params"], name
        assert not {f"src/debiaslab/methods/{m}.py" for m in ("lff", "disent", "fairbatch", "drfairness",
                                                              "adversarial", "erm")} & set(body["deps"])


def test_a_method_trained_by_its_literal_name_is_code_the_stage_runs(tmp_path):
    """train_and_save("erm", ...) imports methods/erm.py by name at run time: editing ERM must rerun
    the baselines (the import closure alone missed it)."""
    script = tmp_path / "s.py"
    script.write_text("from debiaslab.train import train_and_save\n"
                      "def main():\n    train_and_save('erm', 1)\n    print('lff')\n")
    found = closure(script, PACKAGE)
    assert "methods/erm" in found and "methods/lff" not in found  # a call's argument, not any string
    script.write_text("from debiaslab.train import make_method\nmake_method('no_such_method', 1)\n")
    assert not {m for m in closure(script, PACKAGE) if m.startswith("methods/no")}
    assert "methods/erm" in closure(REPO / "stages/train_baseline.py", PACKAGE)
    assert "methods/erm" in closure(REPO / "stages/oracle.py", PACKAGE)  # through oracle.py


def test_closure_follows_imports_at_any_depth(tmp_path):
    assert closure(REPO / "stages/check_params.py", PACKAGE) == {  # threads: through __init__
        "__init__", "check_params", "errors", "io", "params", "stage_args", "threads"}
    script = tmp_path / "s.py"
    script.write_text("def main():\n    from debiaslab.report import collect\n")
    assert {"report", "errors", "__init__"} <= closure(script, PACKAGE)
    script.write_text("from debiaslab.methods import get_method\nfrom .methods.gce import GCE\n")
    assert {"methods/__init__", "methods/base", "methods/gce", "methods/biased_auxiliary",
            "__init__"} <= closure(script, PACKAGE)
    assert "methods/lff" not in closure(script, PACKAGE)  # imported by name at run time


def test_rewrite_keeps_comments_and_other_deps():
    text = ("stages:\n  a:   # a comment\n    cmd: python stages/a.py\n    deps:\n"
            "      - data/params_checked\n      - stages/a.py\n      - src/debiaslab/old.py\n"
            "      - data/x  # read only\n    outs:\n      - y\n")
    new = rewrite(text, {"a": ["src/debiaslab/errors.py", "src/debiaslab/io.py"]})
    assert new == text.replace("      - src/debiaslab/old.py\n",
                               "      - src/debiaslab/errors.py\n      - src/debiaslab/io.py\n")


def test_the_committed_lock_holds_only_stages_the_pipeline_defines():
    """DVC keeps a removed or renamed stage's entry in dvc.lock; a stale one misleads a reader and
    costs every `dvc status` its parsing. After renaming stages, delete their entries."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        defined = {stage.addressing for stage in repo.index.stages}
    locked = set(yaml.safe_load((REPO / "dvc.lock").read_text())["stages"])
    assert locked - defined == set()
