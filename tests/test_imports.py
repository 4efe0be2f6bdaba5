"""The floors of DESIGN.md, enforced: imports run one way, down, and no two modules import each other.

Every `import` in every module counts, including the lazy ones inside functions: a lazy import up the
floors is still a dependency up the floors.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> floor. A module may import its own package and packages on lower floors only.
# backends sits on the catalog's floor but above it: clients use the catalog's errors and recipe loader.
FLOORS: dict[str, float] = {
    "catalogs": 0,
    "backends": 0.5,
    "judges": 1,
    "filters": 1,
    "factory": 2,
    "training": 3,
    "review": 3,
    "scaleout": 3,
    "r1f": 4,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in FLOORS:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Project modules that `name` imports, resolved to the most specific module that exists."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()

    def add(target: str) -> None:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target and target != name:
            out.add(target)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FLOORS:
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] not in FLOORS:
                continue
            for alias in node.names:  # `from pkg import submodule` depends on the submodule
                sub = f"{module}.{alias.name}"
                add(sub if sub in MODULES else module)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_the_walk_sees_every_package() -> None:
    for package in ("catalogs", "backends", "judges", "filters", "factory", "r1f"):
        assert package in MODULES, f"{package}/ has no __init__.py"
    assert len(MODULES) > 40
    # the walk must see lazy imports inside functions too
    assert "factory.generate" in GRAPH["factory.cli"]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_run_down_the_floors(name: str) -> None:
    own = name.split(".")[0]
    bad = sorted(t for t in GRAPH[name] if t.split(".")[0] != own and FLOORS[t.split(".")[0]] >= FLOORS[own])
    assert not bad, (f"{name} (floor {FLOORS[own]}) imports {bad}: imports must run down the floors "
                     f"{FLOORS}. Move the shared piece down, or hand it in as a parameter.")


def test_no_judge_or_filter_imports_the_factory() -> None:
    for name, targets in GRAPH.items():
        if name.split(".")[0] in ("judges", "filters", "catalogs", "backends"):
            assert not any(t.split(".")[0] in ("factory", "training", "r1f") for t in targets), (name, targets)


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that reach each other by following imports (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycles() -> None:
    cycles = find_cycles(GRAPH)
    assert not cycles, f"import cycles: {cycles}"


def test_the_walk_catches_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    """The checks above can fail: the same walk on two planted modules finds both defects."""
    pkg = tmp_path / "catalogs"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from factory import generate\n    from catalogs import b\n")
    (pkg / "b.py").write_text("from .a import f\n")
    global ROOT, MODULES
    saved = ROOT, MODULES
    try:
        ROOT = tmp_path
        MODULES = {**saved[1], "catalogs.a": pkg / "a.py", "catalogs.b": pkg / "b.py"}
        a, b = _imports("catalogs.a", pkg / "a.py"), _imports("catalogs.b", pkg / "b.py")
    finally:
        ROOT, MODULES = saved
    assert "factory.generate" in a and "catalogs.b" in a and "catalogs.a" in b
    assert find_cycles({"catalogs.a": a & {"catalogs.b"}, "catalogs.b": b}) == [["catalogs.a", "catalogs.b"]]
