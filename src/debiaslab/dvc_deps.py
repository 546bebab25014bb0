"""Each stage's code dependencies in dvc.yaml, computed from its script's import closure.

``python -m debiaslab.dvc_deps`` rewrites, in place, the ``src/debiaslab/*.py`` lines of every
stage's ``deps`` so they are exactly the library modules the stage's script imports, directly or
through other modules (``--check`` only reports the difference, exit 1). Everything else in
dvc.yaml, comments included, is left as it is. So ``dvc repro`` reruns a stage whenever code it
runs changes, and only then.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import yaml

PACKAGE_DIR = "src/debiaslab"
SCRIPT = re.compile(r"stages/\w+\.py")
CODE_DEP = re.compile(r"^(\s+)- src/debiaslab/\w+\.py\s*(#.*)?$")


def imported_modules(path: Path, package: Path) -> set[str]:
    """debiaslab modules one file imports, absolute or relative, at any depth of the file."""
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
    return {n for n in names if (package / f"{n}.py").is_file()}


def closure(script: Path, package: Path) -> set[str]:
    """The script's debiaslab modules and theirs, transitively; ``__init__`` and what it imports
    run whenever any of them is imported."""
    todo, seen = list(imported_modules(script, package)), set()
    if todo:
        todo.append("__init__")
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(imported_modules(package / f"{name}.py", package))
    return seen


def expected_code_deps(root: Path) -> dict[str, list[str]]:
    """{stage name in dvc.yaml: sorted src/debiaslab/*.py paths its script runs}."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, stage in stages.items():
        script = SCRIPT.search(stage.get("do", stage)["cmd"].replace("${guard}", "")).group(0)
        modules = closure(root / script, root / PACKAGE_DIR)
        out[name] = sorted(f"{PACKAGE_DIR}/{m}.py" for m in modules)
    return out


def rewrite(text: str, expected: dict[str, list[str]]) -> str:
    """dvc.yaml's text with each stage's run of code-dependency lines replaced by ``expected``."""
    lines, out, stage, i = text.splitlines(keepends=True), [], None, 0
    while i < len(lines):
        line = lines[i]
        if m := re.match(r"^  (\w+):\s*(#.*)?$", line):
            stage = m.group(1)
        out.append(line)
        i += 1
        if re.match(r"^\s+deps:\s*$", line) and stage in expected:
            indent = " " * (len(line) - len(line.lstrip()) + 2)
            rest = []  # the deps that are not library code, in their order (data, stamp, ...)
            while i < len(lines) and (lines[i].startswith(indent + "- ") or not lines[i].strip()):
                if not CODE_DEP.match(lines[i]):
                    rest.append(lines[i])
                i += 1
            first = [d for d in rest if "stages/" not in d and "params_checked" in d]
            script = [d for d in rest if "stages/" in d]
            others = [d for d in rest if d not in first and d not in script]
            code = [f"{indent}- {path}\n" for path in expected[stage]]
            out.extend(first + script + code + others)
    return "".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report stale deps, change nothing")
    ap.add_argument("--root", default=".", help="the repository (default: here)")
    args = ap.parse_args(argv)
    root = Path(args.root)
    text = (root / "dvc.yaml").read_text()
    new = rewrite(text, expected_code_deps(root))
    if new == text:
        print("dvc.yaml: every stage's code deps match its imports")
        return
    if args.check:
        print("dvc.yaml: code deps differ from the imports; run python -m debiaslab.dvc_deps",
              file=sys.stderr)
        sys.exit(1)
    (root / "dvc.yaml").write_text(new)
    print("dvc.yaml: code deps rewritten from the imports")


if __name__ == "__main__":
    main()
