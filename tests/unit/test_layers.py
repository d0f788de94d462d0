"""The architecture as the tree draws it: packages import downwards only, and no module
imports another that imports it back, counting imports made for type checking and inside
functions."""

from __future__ import annotations

import ast
from pathlib import Path

import defects

ROOT = Path(defects.__file__).parent
# What each part may import, besides itself. Downwards: cli -> pipeline, tuning, inference
# -> backends, jobs, dataset -> storage, console -> the training package and errors.
BASE = {"errors", "training"}
ALLOWED: dict[str, set[str]] = {
    "training": set(),
    "testing": set(),
    "signals": set(),
    "errors": {"training"},
    "settings": {"errors"},
    "console": {"training"},
    "storage": BASE | {"console"},
    "dataset": BASE | {"console", "storage"},
    "jobs": BASE | {"console", "dataset"},
    "backends": BASE | {"console", "storage", "dataset", "jobs", "settings", "signals"},
    "inference": BASE | {"console", "storage", "dataset", "jobs", "settings"},
    "pipeline": BASE | {"console", "storage", "dataset", "jobs", "backends", "settings", "signals"},
    "tuning": BASE
    | {"console", "storage", "dataset", "jobs", "backends", "settings", "signals", "pipeline"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        for target in targets:
            if target in modules and target != name:
                found.add(target)
                break
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_package_imports_only_the_layers_below_it() -> None:
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if _part(module) in ALLOWED
        for target in targets
        if _part(target) not in ALLOWED[_part(module)] | {_part(module), ""}
    )
    assert upward == []


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = _graph()
    circles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            module, path = stack.pop()
            for target in graph[module]:
                if target == start:
                    circles.append(" -> ".join([*path, start]))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, [*path, target]))
    assert circles == []


def test_only_five_modules_lie_loose_at_the_top() -> None:
    loose = sorted(path.name for path in ROOT.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "errors.py", "settings.py", "signals.py"]
