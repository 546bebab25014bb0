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
CODE_DEP = re.compile(r"^(\s+)- src/debiaslab/[\w/]+\.py\s*(#.*)?$")
# A method module chosen by the stage's loop variable: methods/${item}.py or methods/${item.method}.py
METHOD_DEP = re.compile(r"src/debiaslab/methods/\$\{\s*item(?:\.(\w+))?\s*\}\.py")
LIST_REF = re.compile(r"^\$\{\s*([\w.]+)\s*\}$")
METHOD_LOADERS = ("train_and_save", "make_method", "get_method")  # their first argument names a method


def _module(package: Path, parts: list[str]) -> str | None:
    """'a/b' for a module file a/b.py, 'a/__init__' for a package a/, None if neither."""
    if not parts:
        return "__init__"
    path = package.joinpath(*parts)
    if path.with_suffix(".py").is_file():
        return "/".join(parts)
    if (path / "__init__.py").is_file():
        return "/".join(parts) + "/__init__"
    return None


def imported_modules(path: Path, package: Path) -> set[str]:
    """debiaslab modules one file imports, absolute or relative, at any depth of the file, as paths
    below the package without ``.py`` (``train``, ``methods/base``, ``methods/__init__``)."""
    here = list(path.resolve().relative_to(package.resolve()).parent.parts) \
        if path.resolve().is_relative_to(package.resolve()) else []
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)] if node.level - 1 <= len(here) else None
            elif (node.module or "").split(".")[0] == "debiaslab":
                base = []
            else:
                continue
            if base is None:
                continue
            module = base + [p for p in (node.module or "").split(".") if p]
            if node.level == 0:
                module = module[1:]  # drop "debiaslab"
            names.add(_module(package, module))
            for alias in node.names:  # `from .methods import gce`: a submodule
                if (package.joinpath(*module, alias.name).with_suffix(".py").is_file()
                        or (package.joinpath(*module, alias.name) / "__init__.py").is_file()):
                    names.add(_module(package, module + [alias.name]))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "debiaslab":
                    names.add(_module(package, parts[1:]))
        elif method := _method_named(node, package):  # train_and_save("erm", ...): imported by name
            names.add(f"methods/{method}")
    return {n for n in names if n}


def _method_named(node: ast.AST, package: Path) -> str | None:
    """The method a call names by a literal, ``train_and_save("erm", ...)``, ``make_method(...)`` or
    ``get_method(...)``, when ``methods/NAME.py`` exists: imported by name at run time, it is code
    the caller runs all the same."""
    if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)):
        return None
    func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
    name = node.args[0].value
    if func in METHOD_LOADERS and name.isidentifier() and (package / "methods" / f"{name}.py").is_file():
        return name
    return None


def _with_packages(name: str) -> set[str]:
    """A module and the ``__init__`` of every package above it: importing it runs them all."""
    parts = name.split("/")[:-1]
    return {name} | {"/".join(parts[:i] + ["__init__"]) for i in range(len(parts) + 1)}


def closure(script: Path, package: Path) -> set[str]:
    """The script's debiaslab modules and theirs, transitively; ``__init__`` and what it imports
    run whenever any of them is imported."""
    todo, seen = list(imported_modules(script, package)), set()
    while todo:
        name = todo.pop()
        for module in _with_packages(name) - seen:
            seen.add(module)
            todo.extend(imported_modules(package / f"{module}.py", package))
    return seen


def _lookup(params: dict, dotted: str):
    value = params
    for key in dotted.split("."):
        value = value[key]
    return value


def loop_methods(stage: dict, params: dict, field: str | None) -> list[str]:
    """The method names a stage's loop variable takes: its ``foreach`` list, or the matrix's
    ``field`` list, each a literal list or a ``${params.key}`` reference."""
    source = stage["matrix"][field] if field else stage["foreach"]
    if isinstance(source, str) and (m := LIST_REF.match(source)):
        source = _lookup(params, m.group(1))
    return [str(name) for name in source]


def expected_code_deps(root: Path) -> dict[str, list[str]]:
    """{stage name in dvc.yaml: sorted src/debiaslab/*.py paths its script runs}. A stage that
    trains the method its loop names (a ``methods/${item}.py`` dep) runs that module too, and the
    helpers it imports: those of every method its list holds in params.yaml are listed."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((root / "params.yaml").read_text())
    package = root / PACKAGE_DIR
    out = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        script = SCRIPT.search(body["cmd"].replace("${guard}", "")).group(0)
        modules = closure(root / script, package)
        for dep in body.get("deps", []):
            if isinstance(dep, str) and (m := METHOD_DEP.fullmatch(dep.split("#")[0].strip())):
                for method in loop_methods(stage, params, m.group(1)):
                    own = f"methods/{method}"
                    modules |= closure(package / f"{own}.py", package) - {own}
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
            script = [d for d in rest if "stages/" in d or METHOD_DEP.search(d)]
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
