"""Structure rules: the libraries do not import the faces, params.yaml's defaults have one home,
worlds are plugs (no world checks outside the world packages)."""

from __future__ import annotations

import ast
from pathlib import Path

from inpo.config import DEFAULT_PARAMS, Config, config_from_dict, flatten, read_yaml
from inpo.pipeline.imports import imported_modules

ROOT = Path(__file__).resolve().parents[1]
FACES = ("inpo.stages", "inpo.cli", "flows", "benchmarks")
LIBRARY_FILES = [
    p
    for folder in ("inpo", "evaluation")
    for p in sorted((ROOT / folder).rglob("*.py"))
    if not p.is_relative_to(ROOT / "inpo" / "stages") and p.name != "cli.py"
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_libraries_do_not_import_the_faces():
    assert len(LIBRARY_FILES) > 50
    bad = []
    for path in LIBRARY_FILES:
        for module in imported_modules(_module_name(path), path):
            if any(module == face or module.startswith(face + ".") for face in FACES):
                bad.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not bad, bad


def test_every_params_yaml_value_is_the_dataclass_default():
    from_yaml = flatten(config_from_dict(read_yaml(DEFAULT_PARAMS)))
    defaults = flatten(Config())
    differ = {k: (from_yaml[k], defaults.get(k)) for k in from_yaml if from_yaml[k] != defaults.get(k)}
    assert not differ, f"params.yaml differs from the dataclass defaults: {differ}"
    assert set(defaults) == set(from_yaml)


def _world_checks(path: Path) -> list[str]:
    """Comparisons of anything with the literal "toy" (a world or family switch)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                if isinstance(side, ast.Constant) and side.value == "toy":
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                if isinstance(side, ast.Tuple | ast.List | ast.Set) and any(
                    isinstance(e, ast.Constant) and e.value == "toy" for e in side.elts
                ):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_world_checks_outside_the_world_packages():
    plugs = (ROOT / "inpo" / "worlds", ROOT / "inpo" / "toyworld", ROOT / "inpo" / "models")
    files = [
        *LIBRARY_FILES,
        *sorted((ROOT / "inpo" / "stages").rglob("*.py")),
        *sorted((ROOT / "flows").rglob("*.py")),
    ]
    checks = [c for p in files if not any(p.is_relative_to(d) for d in plugs) for c in _world_checks(p)]
    assert not checks, f'"toy" checks outside the world packages: {checks}'


CODE_FOLDERS = ("inpo", "evaluation", "flows", "benchmarks", "scripts")


def test_no_product_or_benchmark_file_is_over_400_lines():
    files = [p for folder in CODE_FOLDERS for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(files) > 60
    long = {str(p.relative_to(ROOT)): n for p in files if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"files over 400 lines: {long}"


def _module_attribute_assignments(path: Path) -> list[str]:
    """Assignments ``alias.name = ...`` (or setattr(alias, ...)) where ``alias`` is an imported module."""
    tree = ast.parse(path.read_text())
    modules = {
        (a.asname or a.name).split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setattr" and node.args:
            targets = [ast.Attribute(value=node.args[0], attr="?")]
        for target in targets:
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                if target.value.id in modules:
                    found.append(f"{path.name}:{node.lineno} {target.value.id}.{target.attr}")
    return found


def test_the_benchmarks_patch_nothing():
    files = sorted((ROOT / "benchmarks").rglob("*.py"))
    assert len(files) >= 6
    patched = [hit for p in files for hit in _module_attribute_assignments(p)]
    assert not patched, f"benchmarks assign to other modules' attributes: {patched}"
    sys_path = [str(p.relative_to(ROOT)) for p in files if "sys.path" in p.read_text()]
    assert not sys_path, f"benchmarks edit sys.path (run them as python -m benchmarks.X): {sys_path}"


def test_the_patch_detector_sees_a_monkeypatch(tmp_path: Path):
    fake = tmp_path / "bench.py"
    fake.write_text("import inpo.models as m\nfrom inpo import train\nm.load = None\nsetattr(train, 'x', 1)\n")
    hits = _module_attribute_assignments(fake)
    assert [h.split(" ")[1] for h in hits] == ["m.load", "train.?"]
