"""The map holds: no import circle, imports between subpackages only in the direction each subpackage's
`__init__` declares ("May import: ..."), and no module at the top of the package besides the entry points."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import pytest_costgate

PACKAGE = Path(pytest_costgate.__file__).parent
NAME = "pytest_costgate"
ENTRY_POINTS = {"__init__", "plugin", "options", "cli"}  # the top: they may import any subpackage


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = (NAME, *path.relative_to(root).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(found: dict[str, Path]) -> dict[str, set[str]]:
    """Each module's imports of the package's own modules: at module level, in functions and under TYPE_CHECKING
    alike (a lazy import is a dependency too)."""
    graph: dict[str, set[str]] = {}
    for name, path in found.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                if module != NAME and not module.startswith(NAME + "."):
                    continue
                for alias in node.names:  # `from pkg import submodule` depends on the submodule
                    sub = f"{module}.{alias.name}"
                    targets.add(sub if sub in found else module)
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name == NAME or a.name.startswith(NAME + ".")}
        graph[name] = targets - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles (strongly connected components of more than one module), each in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def room(module: str) -> str:
    """The subpackage a module lives in ('judge'), or '' for the package itself and its entry points."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else ""


def declared(found: dict[str, Path]) -> dict[str, set[str]]:
    """Each subpackage's 'May import: a, b.' line, from its __init__ docstring."""
    rules = {}
    for name, path in found.items():
        if path.name != "__init__.py" or name.count(".") != 1:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        line = re.search(r"^May import: (.*)\.$", doc, re.M)
        assert line, f"{path}: its docstring must end with 'May import: a, b.' (or 'nothing else of costgate.')"
        text = line.group(1)
        rules[name.split(".")[1]] = set() if text == "nothing else of costgate" else {p.strip() for p in text.split(",")}
    return rules


def violations(graph: dict[str, set[str]], rules: dict[str, set[str]]) -> list[str]:
    """Imports against the declared direction: a subpackage importing one it may not, or the package's top."""
    out = []
    for source, targets in sorted(graph.items()):
        here = room(source)
        if not here:
            continue  # the entry points and the package's public surface sit on top
        for target in sorted(targets):
            there = room(target)
            if there == here:
                continue
            if not there:
                out.append(f"{source} imports {target}: nothing below the top may import the package itself or its "
                           "entry points")
            elif there not in rules.get(here, set()):
                out.append(f"{source} imports {target}: {here}/ may import {', '.join(sorted(rules[here])) or 'nothing'}"
                           f" (its __init__ says), not {there}/")
    return out


def test_no_import_circle():
    assert cycles(imports(modules())) == []


def test_imports_run_the_declared_way():
    found = modules()
    rules = declared(found)
    assert violations(imports(found), rules) == []
    # and the declarations themselves run one way (a circle there would make every room reachable from every other)
    assert cycles(rules) == []
    assert set(rules) == {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    for room_name, allowed in rules.items():
        assert allowed <= set(rules), f"{room_name}/ declares an unknown subpackage: {allowed - set(rules)}"


def test_only_the_entry_points_stand_at_the_top():
    assert {p.stem for p in PACKAGE.glob("*.py")} == ENTRY_POINTS


def test_the_checks_see_a_circle_and_a_wrong_way_import(tmp_path):
    """The checks themselves can fail: a copy of the package with one import added against the direction."""
    rules = declared(modules())
    graph = imports(modules())
    assert "pytest_costgate.judge.compare" in graph
    wrong = {**graph, "pytest_costgate.judge.compare": graph["pytest_costgate.judge.compare"]
             | {"pytest_costgate.report.numbers"}}
    assert violations(wrong, rules) == ["pytest_costgate.judge.compare imports pytest_costgate.report.numbers: judge/ "
                                        "may import config, pricing, safety, store (its __init__ says), not report/"]
    circle = {**graph, "pytest_costgate.safety.errors": {"pytest_costgate.safety.redact"},
              "pytest_costgate.safety.redact": {"pytest_costgate.safety.errors"}}
    assert ["pytest_costgate.safety.errors", "pytest_costgate.safety.redact"] in cycles(circle)


def test_the_public_surface_is_explicit_and_complete():
    """`from pytest_costgate import X` for every name of __all__, the same objects as where they live."""
    for name in pytest_costgate.__all__:
        assert getattr(pytest_costgate, name) is not None
    assert pytest_costgate.Document.__module__ == "pytest_costgate.store.document"
    with pytest.raises(AttributeError):
        pytest_costgate.not_a_name  # noqa: B018
    # the names type checkers see (TYPE_CHECKING imports) are exactly __all__
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    typed = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level
             for a in node.names}
    assert typed == set(pytest_costgate.__all__)
