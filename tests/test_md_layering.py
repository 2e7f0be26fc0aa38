"""Layering: ``mtpkit.md`` sits below active learning, analysis and campaigns.

MD returns what those layers need (``MDResult``); it must not reach up into them, at
module level or inside functions (the review counted many function-local imports that
hid the import graph).
"""

from __future__ import annotations

import ast
from pathlib import Path

import mtpkit

MD = Path(mtpkit.__file__).parent / "md"
UPPER = ("mtpkit.active_learning", "mtpkit.analysis", "mtpkit.campaign", "mtpkit.commands",
         "mtpkit.cli")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in a file, nested ones and ``import_module`` too."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against mtpkit.md
                base = ".".join(["mtpkit", "md"][: 3 - node.level] + ([base] if base else []))
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", ""))
              in ("import_module", "__import__") and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.lineno, node.args[0].value))
    return out


def test_md_does_not_import_upper_layers():
    files = sorted(MD.glob("*.py"))
    assert len(files) >= 5
    bad = [f"{path.name}:{line} imports {mod}" for path in files
           for line, mod in imported_modules(path)
           if any(mod == up or mod.startswith(up + ".") for up in UPPER)]
    assert bad == []


def test_the_checker_sees_nested_and_relative_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from mtpkit.analysis import sweep\n"
                     "    from ..campaign import learning\n"
                     "    import importlib\n    importlib.import_module('mtpkit.active_learning')\n")
    mods = {m for _, m in imported_modules(probe)}
    assert {"mtpkit.analysis", "mtpkit.campaign.learning", "mtpkit.active_learning"} <= mods
