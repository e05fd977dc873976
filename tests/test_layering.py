"""The package layout's import rules, read from the source so they cannot rot.

``gs1`` imports nothing of ours; ``drivers`` and ``mqtt_topics`` import only ``gs1``
(and themselves); ``gateway`` may import all of them; nothing imports ``gateway``.
No import circle between modules anywhere, not even under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gs1", "drivers", "mqtt_topics", "gateway", "central")
#: Which of our top-level packages each package may import (besides itself).
ALLOWED: dict[str, frozenset[str]] = {
    "gs1": frozenset(),
    "drivers": frozenset({"gs1"}),
    "mqtt_topics": frozenset({"gs1"}),
    "gateway": frozenset({"gs1", "drivers", "mqtt_topics"}),
    "central": frozenset({"gs1", "mqtt_topics"}),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if "migrations" in path.parts:  # run by alembic, not imported
                continue
            found[module_name(path)] = path
    return found


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Our modules imported by ``path`` (every import statement, nested ones too)."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for t in targets:
            # the longest known module that is ``t`` or a parent of it
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(path, name, known) for name, path in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            # importing a package runs its __init__, not its submodules: an edge to a
            # package's own parent is a real edge, a parent importing a child is too
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_imports_point_down() -> None:
    bad = []
    for mod, deps in sorted(graph().items()):
        top = mod.split(".")[0]
        for dep in sorted(deps):
            dep_top = dep.split(".")[0]
            if dep_top != top and dep_top not in ALLOWED[top]:
                bad.append(f"{mod} imports {dep}")
    assert not bad, "imports that point up or sideways:\n" + "\n".join(bad)


def test_no_import_circles() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_checker_sees_circles_and_wrong_directions() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    g = graph()
    assert "gs1.rules" in g["gs1.interpret"] or "gs1.elements" in g["gs1.interpret"]
    assert g["gs1.rules"] <= {m for m in g if m.startswith("gs1")}


@pytest.mark.parametrize("pkg", PACKAGES)
def test_every_package_has_modules(pkg: str) -> None:
    assert any(m.split(".")[0] == pkg for m in modules())
