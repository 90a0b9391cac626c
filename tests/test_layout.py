"""The layout of design.md ("Layout", "One of each"), checked from the source with ast.

The stage order: an earlier stage never imports a later one, not even lazily inside a
function or under ``TYPE_CHECKING``; ``server/``, ``demo/`` and ``__main__`` stand beside
and may import anything; the top level lists exactly the modules of the flow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import writer_magics

PACKAGE = Path(writer_magics.__file__).parent
#: The stages in the order of the flow; each may import only itself and earlier ones.
ORDER = (
    "errors",
    "config",
    "files",
    "line",
    "request",
    "transport",
    "answer",
    "display",
    "tools",
    "send",
    "commands",
    "magics",
    "__init__",
)
#: Beside the flow: may import any stage.
BESIDE = ("server", "demo", "__main__")
#: The target listing of the package's top level.
TOP_MODULES = {"__init__", "__main__", "errors", "config", "files", "request", "send", "magics"}
TOP_FOLDERS = {"line", "transport", "answer", "display", "tools", "commands", "server", "demo"}


def _modules() -> list[tuple[str, Path]]:
    """(dotted name, path) of every module in the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every ``writer_magics`` import anywhere in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "writer_magics":
                found += [(node.lineno, f"writer_magics.{a.name}") for a in node.names]
            elif node.module.startswith("writer_magics."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("writer_")]
    return found


def _against_the_order() -> list[str]:
    bad = []
    for name, path in _modules():
        me = _stage(name)
        if me in BESIDE:
            continue
        for line, target in _imports(path):
            other = _stage(target)
            if other == "__version__":
                continue
            if other in BESIDE:
                bad.append(f"{name}:{line} imports {target} (beside the flow)")
            elif other not in ORDER or me not in ORDER:
                bad.append(f"{name}:{line} imports {target} (not a stage of the order)")
            elif ORDER.index(other) > ORDER.index(me):
                bad.append(f"{name}:{line} imports {target}")
    return bad


def test_the_checker_sees_a_late_import(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from writer_magics.display.panel import X\n"
        "def f():\n    import writer_magics.magics\n    from writer_magics import send\n",
        encoding="utf-8",
    )
    assert _imports(source) == [
        (3, "writer_magics.display.panel"),
        (5, "writer_magics.magics"),
        (6, "writer_magics.send"),
    ]


def test_each_stage_imports_only_earlier_stages() -> None:
    assert _against_the_order() == []


def test_at_most_about_ten_modules_at_the_top_level() -> None:
    modules = [p.stem for p in PACKAGE.glob("*.py")]
    assert len(modules) <= 10, sorted(modules)


def test_the_top_level_reads_like_the_flow() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert (modules, folders) == (TOP_MODULES, TOP_FOLDERS)


def _exception_classes() -> list[tuple[str, str]]:
    """(module, class) of every public class that derives from an exception class."""
    exceptions = {"Exception", "BaseException", "UsageError"}
    classes: list[tuple[str, str, list[str]]] = []
    for name, path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b).split("[")[0].split(".")[-1] for b in node.bases]
                classes.append((name, node.name, bases))
    changed = True
    while changed:  # a class is an exception if one of its bases is
        changed = False
        for _, cls, bases in classes:
            if cls not in exceptions and exceptions.intersection(bases):
                exceptions.add(cls)
                changed = True
    return [(m, c) for m, c, _ in classes if c in exceptions and not c.startswith("_")]


def test_every_exception_of_the_package_is_defined_in_errors() -> None:
    # The model server (server/) stands beside the package and keeps its own HTTP error.
    outside = [
        f"{m}.{c}"
        for m, c in _exception_classes()
        if m != "writer_magics.errors" and not m.startswith("writer_magics.server")
    ]
    assert outside == []
    inside = {c for m, c in _exception_classes() if m == "writer_magics.errors"}
    tree = ast.get_docstring(ast.parse((PACKAGE / "errors.py").read_text(encoding="utf-8")))
    assert tree is not None
    assert [c for c in sorted(inside) if f" {c} " not in tree] == []  # all in the tree


def test_one_render_traceback_and_one_one_line() -> None:
    defined: dict[str, list[str]] = {"_render_traceback_": [], "one_line": [], "_one_line": []}
    for name, path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name in defined:
                defined[node.name].append(name)
    assert defined == {
        "_render_traceback_": ["writer_magics.errors", "writer_magics.errors"],
        "one_line": ["writer_magics.errors"],
        "_one_line": [],
    }
