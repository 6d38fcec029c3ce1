"""The code a stage runs: the import closure of its module, as DVC dependency paths.

Imports are read from the source (``ast``), not by importing it: module-level and function-level
``import`` / ``from … import`` statements count, ``if TYPE_CHECKING:`` blocks do not (they never run).
So do the ``"package.module:attribute"`` strings that registries import lazily
(``evaluation.imports.import_object``). Only the project's own packages are followed (``inpo``, ``evaluation``, ``flows``). Each module found
becomes one dependency path: a module inside a sub-package is covered by that sub-package's folder
(``inpo/train``), a top-level module of a package by its file (``inpo/losses.py``), and importing a
module runs the ``__init__.py`` of every package above it, so those count too. A module that reads
files of the checkout at run time names them in a module-level ``PIPELINE_FILES = ("path", ...)``
tuple, and they are dependencies too (``evaluation/prompts.py``: its prompt tables).

    closure = import_closure(["inpo.stages.train"], root)      # {"inpo.stages.train", "inpo.train.loop", ...}
    dep_paths(closure, root)                                    # ["inpo/__init__.py", "inpo/config", ...]
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

PROJECT_PACKAGES = ("inpo", "evaluation", "flows")
PER_FILE_PACKAGES = ("inpo.stages",)  # one module per command: each is its own dependency
LAZY_IMPORT = re.compile(r"^((?:inpo|evaluation|flows)(?:\.\w+)*):\w+$")  # "pkg.mod:attr"
FILES_NAME = "PIPELINE_FILES"


def module_file(module: str, root: Path) -> Path | None:
    """``a.b.c`` → ``root/a/b/c.py`` or ``root/a/b/c/__init__.py`` (None outside the project)."""
    if module.split(".")[0] not in PROJECT_PACKAGES:
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(tree: ast.AST) -> Iterable[ast.AST]:
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` (their ``else`` runs)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imported_modules(module: str, path: Path) -> set[str]:
    """The absolute module names ``path`` (the file of ``module``) imports, including ``from x import y``
    as both ``x`` and ``x.y`` (``y`` may be a sub-module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _statements(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            lazy = LAZY_IMPORT.match(node.value)
            if lazy:
                found.add(lazy.group(1))
    return found


def declared_files(path: Path) -> list[str]:
    """The module-level ``PIPELINE_FILES`` tuple of string literals in ``path`` (empty if none)."""
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == FILES_NAME for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            if not (isinstance(value, tuple) and all(isinstance(v, str) for v in value)):
                raise ValueError(f"{path}: {FILES_NAME} must be a tuple of path strings")
            return list(value)
    return []


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_closure(roots: Iterable[str], root: Path) -> set[str]:
    """Every project module reachable from ``roots`` by imports (packages above each module included)."""
    todo, seen = list(roots), set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        path = module_file(module, root)
        if path is None:
            continue
        seen.add(module)
        todo.extend(_parents(module))
        todo.extend(imported_modules(module, path))
    return seen


def dep_path(module: str, root: Path) -> str:
    """The dependency path covering ``module``: its sub-package folder, or its own file."""
    path = module_file(module, root)
    if path is None:
        raise ValueError(f"{module}: not a module of {PROJECT_PACKAGES} under {root}")
    parts = module.split(".")
    if ".".join(parts[:2]) in PER_FILE_PACKAGES:
        return path.relative_to(root).as_posix()
    if path.name == "__init__.py" and len(parts) == 1:
        return f"{parts[0]}/__init__.py"
    if len(parts) >= 3 or (len(parts) == 2 and path.name == "__init__.py"):
        return "/".join(parts[:2])  # inpo.train.loop, inpo.train → inpo/train
    return path.relative_to(root).as_posix()  # inpo.losses → inpo/losses.py


def dep_paths(modules: Iterable[str], root: Path) -> list[str]:
    """Sorted, de-duplicated dependency paths of ``modules`` and the files they declare
    (``PIPELINE_FILES``); a path inside a listed folder is left out."""
    modules = list(modules)
    found = {dep_path(m, root) for m in modules}
    for m in modules:
        path = module_file(m, root)
        assert path is not None
        found.update(declared_files(path))
    paths = sorted(found)
    folders = {p for p in paths if (root / p).is_dir()}
    return [p for p in paths if not any(p.startswith(f + "/") for f in folders)]
