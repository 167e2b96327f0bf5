"""The package follows its data flow: a stage imports only the stages before it (lazy imports
inside functions count too), and the shared ground at the package root imports no stage.

The order is the one the README's architecture paragraph gives. ``evaluate`` comes after
``recognize`` although users run it before they build a gallery: it reports the open-set
decision a gallery of the evaluated photos would make, with ``recognize``'s own decision."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import facemetric

PACKAGE = Path(facemetric.__file__).parent
STAGES = (
    "data", "models", "train", "gallery", "recognize", "enrol", "evaluate",
    "unknown", "cluster", "events", "video", "web", "cli",
)  # fmt: skip
SHARED = ("__init__", "__main__", "errors", "catalog", "paths", "redact", "csvcells")


def part_of(module: str) -> str:
    """The stage (or shared module) a dotted ``facemetric.x.y`` name belongs to; a name the
    package's ``__init__`` defines (``facemetric.__version__``) belongs to it."""
    parts = module.split(".")
    if len(parts) > 1 and ((PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").exists()):
        return parts[1]
    return "__init__"


def imports_of(path: Path, root: Path = PACKAGE.parent) -> list[tuple[int, str]]:
    """Every facemetric name ``path`` (below ``root``) imports (line, dotted name: the module
    and, for ``from m import x``, ``m.x``, which may be a submodule), at any depth: relative
    imports resolved, lazy ones inside functions included."""
    rel = path.relative_to(root).with_suffix("")
    package = list(rel.parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found += [(node.lineno, f"{name}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, n) for line, n in found if n.startswith("facemetric.")]


def rank(part: str) -> int:
    return -1 if part in SHARED else STAGES.index(part)


def test_every_module_belongs_to_a_stage_or_the_shared_ground() -> None:
    loose = sorted(
        p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" and p.stem not in SHARED)
        or (p.is_dir() and (p / "__init__.py").exists() and p.name not in STAGES)
    )
    assert loose == [], f"neither a stage nor shared ground: {loose}"


def test_a_stage_imports_only_stages_before_it() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        own = part_of(module)
        for line, name in imports_of(path):
            target = part_of(name)
            if target != own and rank(target) > rank(own):
                upward.append(f"{path.relative_to(PACKAGE)}:{line} imports {name}")
    assert upward == [], "imports against the data flow:\n" + "\n".join(upward)


# Modules that import each other, left as they are (say why); none now.
KNOWN_CIRCLES: list[set[str]] = []


def module_graph() -> dict[str, set[str]]:
    """Each package module (``gallery.store``) -> the package modules it imports."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        names[".".join(parts)] = path
    graph: dict[str, set[str]] = {}
    for module, path in names.items():
        graph[module] = set()
        for _, name in imports_of(path):
            target = name.removeprefix("facemetric").lstrip(".")
            while target and target not in names:
                target = target.rpartition(".")[0]
            if target and target != module:
                graph[module].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_modules_import_each_other_beyond_the_known_circles() -> None:
    found = circles(module_graph())
    assert [c for c in found if c not in KNOWN_CIRCLES] == []
    assert [c for c in KNOWN_CIRCLES if c not in found] == [], "gone: remove it from the list"


def test_circles_are_found_as_a_brute_force_closure_finds_them() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    reach = {v: set(graph[v]) for v in graph}
    for _ in graph:  # transitive closure, the slow way
        for v in graph:
            reach[v] |= {x for w in reach[v] for x in reach[w]}
    brute = {frozenset(w for w in graph if w in reach[v] and v in reach[w]) for v in graph}
    assert {frozenset(c) for c in circles(graph)} == {c for c in brute if len(c) > 1}


def test_the_readme_gives_the_stages_in_this_order() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    paragraph = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`(\w+)/`", paragraph)
    in_order = [s for i, s in enumerate(named) if s in STAGES and s not in named[:i]]
    assert in_order == list(STAGES)


def test_the_check_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The checker itself, on a module laid out like the package's: a lazy import of a later
    stage inside a function and a relative import of another stage are both found."""
    probe = tmp_path / "facemetric" / "gallery" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "from ..recognize import decision\n"
        "def f():\n    from facemetric.web.app import create_app\n    return create_app\n",
        encoding="utf-8",
    )
    found = imports_of(probe, tmp_path)
    assert found == [(1, "facemetric.recognize.decision"), (3, "facemetric.web.app.create_app")]
    assert all(rank(part_of(name)) > rank("gallery") for _, name in found)
