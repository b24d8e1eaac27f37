"""The house: each layer imports only the layers below it, no module imports itself back
through others (type-only imports included), no module over 400 lines, no function over 60.

The layers and what each may import are the table below; CONTRIBUTING.md says the same in words.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "spiralsim"

#: layer -> the layers it may import (besides itself).
MAY_IMPORT: dict[str, set[str]] = {
    "vocabulary": set(),
    "scenario": {"vocabulary"},
    "metrics": {"vocabulary"},
    "model": {"vocabulary", "scenario", "metrics"},
    "analysis": {"vocabulary", "scenario", "metrics"},
    "report": {"vocabulary", "scenario", "metrics", "analysis"},
    "simulate": {"scenario", "model", "analysis"},
    "experiments": {"vocabulary", "scenario", "metrics", "analysis", "report", "simulate"},
    "cli": {"scenario", "report", "simulate", "experiments"},
    "__init__": {"analysis", "report", "scenario", "simulate", "experiments"},
}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (`spiralsim.model.pool`)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imported(name: str, path: Path) -> set[str]:
    """The spiralsim modules `name` imports, at any depth of its code (type-only imports too)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("spiralsim")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("spiralsim"):
                known = modules()
                subs = {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known}
                found |= subs or {target}
    found.discard(name)
    return found


def layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


GRAPH = {name: imported(name, path) for name, path in modules().items()}


def test_each_layer_imports_only_the_layers_below_it():
    upward = [f"{name} imports {dep}" for name, deps in GRAPH.items() for dep in sorted(deps)
              if layer(dep) != layer(name) and layer(dep) not in MAY_IMPORT[layer(name)]]
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_every_layer_is_in_the_table():
    assert {layer(n) for n in GRAPH} == set(MAY_IMPORT)


def test_no_import_circles():
    """A package's __init__ re-exporting its modules is not a circle; anything else that leads back is."""
    def deps(name: str) -> set[str]:
        return {d for d in GRAPH[name] if not (d in GRAPH and GRAPH[d] and name.startswith(d + ".")
                                               and PACKAGE.joinpath(*d.split(".")[1:], "__init__.py").exists())}

    circles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(deps(node)):
            if dep not in GRAPH:
                continue
            if state.get(dep) == 1:
                circles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_small_modules_and_functions():
    too_big = []
    for name, path in modules().items():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 400:
            too_big.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    too_big.append(f"{name}.{node.name}: {length} lines")
    assert not too_big, "over the limits (400 lines a module, 60 a function):\n" + "\n".join(too_big)
