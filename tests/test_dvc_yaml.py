"""dvc.yaml declares, for every stage, every library module its script imports (transitively),
so `dvc repro` reruns a stage whenever code it runs has changed, and never serves stale results."""

import ast
import re
from pathlib import Path

import yaml
from conftest import REPO

PACKAGE = REPO / "src" / "debiaslab"


def imported_modules(path: Path) -> set[str]:
    """debiaslab modules imported by one file, absolute or relative."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 or (node.module or "").startswith("debiaslab"):
                base = (node.module or "").removeprefix("debiaslab").lstrip(".")
                if base:
                    names.add(base.split(".")[0])
                else:  # from . import a, b / from debiaslab import a
                    names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names if a.name.startswith("debiaslab."))
    return {n for n in names if (PACKAGE / f"{n}.py").is_file()}


def closure(script: Path) -> set[str]:
    todo, seen = list(imported_modules(script)), set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(imported_modules(PACKAGE / f"{name}.py"))
    return seen


def test_every_stage_depends_on_the_code_it_runs():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    missing = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        script = re.search(r"stages/\w+\.py", body["cmd"]).group(0)
        deps = set(body["deps"])
        assert script in deps, f"{name}: {script} is not a dependency"
        need = {f"src/debiaslab/{m}.py" for m in closure(REPO / script)}
        if need - deps:
            missing[name] = sorted(need - deps)
    assert not missing, missing
