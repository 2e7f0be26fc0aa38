"""Import layering of mtpkit.structures: no cycles inside it, and nothing above it imported.

Checked on the source (every ``import`` statement, function-local ones included), so a lazy
import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mtpkit.structures

PACKAGE = Path(mtpkit.structures.__file__).parent
#: what mtpkit.structures may import from the rest of mtpkit
ALLOWED_MTPKIT = {"mtpkit.errors", "mtpkit.io_utils"}


def _mtpkit_imports(path: Path) -> set[str]:
    """Absolute names of the mtpkit modules (or module attributes) a source file imports."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("mtpkit"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = ".".join(["mtpkit", "structures"][: 2 - (node.level - 1)])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if mod.startswith("mtpkit"):
                out.add(mod)
    return out


def _graph() -> dict[str, set[str]]:
    return {f"mtpkit.structures.{p.stem}": _mtpkit_imports(p)
            for p in sorted(PACKAGE.glob("*.py")) if p.stem != "__init__"}


def test_structures_import_only_basics_from_the_rest_of_mtpkit():
    for module, imports in _graph().items():
        outside = {m for m in imports if not m.startswith("mtpkit.structures")}
        assert outside <= ALLOWED_MTPKIT, f"{module} imports {sorted(outside - ALLOWED_MTPKIT)}"


def test_builders_is_a_leaf_and_structures_has_no_import_cycle():
    graph = _graph()
    assert not {m for m in graph["mtpkit.structures.builders"] if m.startswith("mtpkit.structures")}
    inner = {k: {m for m in v if m in graph} for k, v in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in inner[node]:
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join([*path, node, nxt])}"
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in inner:
        if node not in state:
            visit(node, [])
