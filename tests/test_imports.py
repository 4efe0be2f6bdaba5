"""The floors of the README's "Layout: the floors", enforced: imports run one way, down, and no two modules
import each other.

Every `import` in every module counts, including the lazy ones inside functions: a lazy import up the
floors is still a dependency up the floors. So do string imports: `import_module("pkg.mod")` (or
`__import__`) with a literal name, an f-string such as `import_module(f"filters.{name}")` completed by the
names the module spells out, and any string that names a project module exactly (`"pkg.mod"` or
`"pkg.mod:attr"`), which is how registries list their modules (`COMMAND_MODULES` in r1f/cli.py, the engines in
r1f/engines.py, the judge and filter registries' `MODULES`, `BACKENDS`); a `getLogger("pkg.mod")` names a logger
and does not count.
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
    "releases": 2,
    "training": 3,
    "review": 3,
    "scaleout": 3,
    "pipelines": 4,
    "r1f": 5,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in FLOORS:
        if not (ROOT / package).is_dir():
            continue
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


IMPORT_FUNCTIONS = ("import_module", "__import__")


def _named_module(text: str) -> str | None:
    """The project module a string names exactly, as a registry writes it: "pkg.mod" or "pkg.mod:attr"."""
    module = text.partition(":")[0]
    return module if "." in module and module.split(".")[0] in FLOORS and module in MODULES else None


def _imports(name: str, path: Path) -> set[str]:
    """Project modules that `name` imports, resolved to the most specific module that exists."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()

    def add(target: str) -> None:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target and target != name:
            out.add(target)

    tree = ast.parse(path.read_text(encoding="utf-8"))
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    loggers = {id(n.args[0]) for n in ast.walk(tree)  # getLogger("r1f.mini") names a logger, not an import
               if isinstance(n, ast.Call) and n.args and getattr(n.func, "attr", None) == "getLogger"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in loggers:
            # a registry's "pkg.mod" or "pkg.mod:attr"
            module = _named_module(node.value)
            if module:
                add(module)
        elif isinstance(node, ast.Call) and node.args and getattr(
                node.func, "id", getattr(node.func, "attr", None)) in IMPORT_FUNCTIONS:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):  # import_module("pkg.mod")
                if arg.value.split(".")[0] in FLOORS:
                    add(arg.value)
            elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                # import_module(f"pkg.{name}"): every module the prefix and one of this module's strings name;
                # when none does, the prefix itself, so that its floor is still checked.
                prefix = str(arg.values[0].value)
                if prefix.split(".")[0] in FLOORS:
                    named = {prefix + s for s in strings if prefix + s in MODULES}
                    for module in named or {prefix.rstrip(".")}:
                        add(module)
        elif isinstance(node, ast.Import):
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
    for package in ("catalogs", "backends", "judges", "filters", "factory", "releases", "training", "review",
                    "scaleout", "r1f"):
        assert package in MODULES, f"{package}/ has no __init__.py"
    assert len(MODULES) > 40
    # the walk must see lazy imports inside functions too
    assert "factory.generate" in GRAPH["factory.cli"]
    # and string imports: the face's command modules, the registries' modules, a lazy f-string import
    assert {"catalogs.cli", "releases.cli", "factory.cli", "r1f.engines"} <= GRAPH["r1f.cli"]
    assert {"scaleout.generate", "scaleout.stages"} <= GRAPH["r1f.engines"]  # the table of engines
    assert "judges.math_accuracy" in GRAPH["judges.registry"]
    assert "backends.vllm_backend" in GRAPH["backends"]
    assert {"filters.dedup", "filters.hygiene"} <= GRAPH["filters.registry"]


def upward(name: str, targets: set[str]) -> list[str]:
    """The targets of `name` on its own floor or above, in another package."""
    own = name.split(".")[0]
    return sorted(t for t in targets if t.split(".")[0] != own and FLOORS[t.split(".")[0]] >= FLOORS[own])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_run_down_the_floors(name: str) -> None:
    own = name.split(".")[0]
    bad = upward(name, GRAPH[name])
    assert not bad, (f"{name} (floor {FLOORS[own]}) imports {bad}: imports must run down the floors "
                     f"{FLOORS}. Move the shared piece down, or hand it in as a parameter.")


def test_no_judge_or_filter_imports_the_factory() -> None:
    for name, targets in GRAPH.items():
        if name.split(".")[0] in ("judges", "filters", "catalogs", "backends"):
            assert not any(FLOORS[t.split(".")[0]] >= 2 for t in targets), (name, targets)


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


def test_the_walk_sees_string_imports(tmp_path: Path) -> None:
    """A registry's module names, import_module with a literal or an f-string, and __import__ are imports: a
    planted catalog module that loads upper floors only through strings is caught going up."""
    pkg = tmp_path / "catalogs"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "c.py").write_text(
        "import importlib\n"
        "import logging\n"
        "\n"
        "COMMAND_MODULES = (\"factory.cli\", \"judges.registry:JUDGES\")\n"
        "NAMES = (\"dedup\",)\n"
        "log = logging.getLogger(\"factory.generate\")\n"
        "\n"
        "def load(name, other):\n"
        "    importlib.import_module(\"training.sft\")\n"
        "    importlib.import_module(f\"filters.{name}\")\n"
        "    importlib.import_module(f\"scaleout.{other}\")\n"
        "    return __import__(\"review\")\n")
    global ROOT, MODULES
    saved = ROOT, MODULES
    try:
        ROOT = tmp_path
        MODULES = {**saved[1], "catalogs.c": pkg / "c.py"}
        c = _imports("catalogs.c", pkg / "c.py")
    finally:
        ROOT, MODULES = saved
    seen = {"factory.cli", "judges.registry", "training.sft", "filters.dedup", "scaleout", "review"}
    assert c == seen, c  # and not the logger's name, factory.generate
    assert upward("catalogs.c", c) == sorted(seen)
