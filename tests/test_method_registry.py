"""The method registry and the loop's independence from methods (issue: methods are a registry)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from inpo.config import Config
from inpo.config.sections import MethodsConfig
from inpo.methods import METHODS, Method, build_method

ROOT = Path(__file__).resolve().parents[1]


def test_every_registered_method_has_its_config_section():
    sections = {f.name for f in dataclasses.fields(MethodsConfig)}
    assert set(METHODS) == sections
    methods_cfg = MethodsConfig()
    for name, cls in METHODS.items():
        method = build_method(name, methods_cfg)
        assert isinstance(method, cls) and issubclass(cls, Method)
        assert method.name == name and method.config is getattr(methods_cfg, name)


def test_an_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown method 'ppo'; expected one of sft, dpo, kto, inpo"):
        build_method("ppo", MethodsConfig())


def test_objective_before_prepare_is_a_clear_error():
    with pytest.raises(RuntimeError, match="prepare"):
        build_method("dpo", MethodsConfig()).objective(None, None)


def _string_constants(path: Path) -> set[str]:
    return {
        n.value
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


def test_the_loop_names_no_method_and_reads_no_method_config():
    loop = ROOT / "inpo" / "train" / "loop.py"
    named = _string_constants(loop) & set(METHODS)
    assert not named, f"inpo/train/loop.py names methods {sorted(named)}"
    tree = ast.parse(loop.read_text())
    sections = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} & set(METHODS)
    assert not sections, f"inpo/train/loop.py reads method sections {sorted(sections)}"
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "config" not in imported, "the loop takes a TrainRun, not the whole Config"
    assert all(not name.startswith("methods.") for name in imported), "the loop imports a method module"


def test_no_function_in_the_training_package_is_longer_than_a_screen():
    long = []
    for folder in ("inpo/train", "inpo/methods"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                    if lines > 60:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_a_train_run_does_not_carry_the_whole_config():
    from inpo.train.run import TrainRun

    assert all(f.type not in (Config, "Config") for f in dataclasses.fields(TrainRun))
