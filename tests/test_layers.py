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
    """The stage (or shared module) a dotted ``facemetric.x.y`` module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path, root: Path = PACKAGE.parent) -> list[tuple[int, str]]:
    """Every facemetric module ``path`` (below ``root``) imports (line, dotted name), at any
    depth: relative imports resolved, lazy ones inside functions included."""
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
            found.append((node.lineno, name))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, n) for line, n in found if n == "facemetric" or n.startswith("facemetric.")]


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
    assert found == [(1, "facemetric.recognize"), (3, "facemetric.web.app")]
    assert all(rank(part_of(name)) > rank("gallery") for _, name in found)
