"""The pipeline contract: dvc.yaml is the stage table's rendering, and its deps cover each stage's code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from inpo import layout
from inpo.config import DEFAULT_PARAMS, load_config
from inpo.pipeline.dvc import code_deps, render_dvc_yaml, template_config
from inpo.pipeline.imports import dep_paths, import_closure
from inpo.pipeline.stages import CLI_MODULES, STAGES, pipeline_stages, tracked_files

ROOT = DEFAULT_PARAMS.parent


def _dvc_stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _entry(name: str) -> dict:
    entry = _dvc_stages()[name]
    return entry["do"] if "foreach" in entry else entry


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def test_committed_dvc_yaml_is_the_rendered_stage_table() -> None:
    assert (ROOT / "dvc.yaml").read_text() == render_dvc_yaml(ROOT), "run `inpo pipeline dvc`"


def test_dvc_stage_outputs_are_the_table_outputs() -> None:
    cfg = template_config()
    assert list(_dvc_stages()) == [s.name for s in STAGES]
    for stage in STAGES:
        item = "${item}" if stage.per_method else ""
        outs = [o if isinstance(o, str) else next(iter(o)) for o in _entry(stage.name)["outs"]]
        assert outs == [f(cfg, item).as_posix() for f in stage.outs], stage.name
    assert _entry("generate")["outs"] == [{"${paths.outputs}/generate": {"persist": True}}]
    assert _entry("prepare")["outs"] == [layout.pair_index(cfg).as_posix()]
    assert _entry("prepare")["outs"] == ["${paths.outputs}/prepare/pairs.parquet"]
    assert _entry("world_pairs")["outs"] == ["${paths.data}/world-pairs"]


def test_dvc_deps_cover_every_module_a_stage_imports() -> None:
    """Every project module in a stage's import closure (function-level imports included) lies
    under one of the stage's deps in the committed dvc.yaml."""
    for stage in STAGES:
        deps = _entry(stage.name)["deps"]
        for module in import_closure([stage.module, *CLI_MODULES], ROOT):
            path = module.replace(".", "/")
            file = path + (".py" if (ROOT / (path + ".py")).is_file() else "/__init__.py")
            assert _covered(file, deps), f"{stage.name}: dvc.yaml misses {file} (imported: {module})"


def test_dvc_deps_cover_what_really_gets_imported() -> None:
    """Independent of the AST reader: import each stage module for real and check sys.modules."""
    for stage in STAGES:
        code = (
            f"import sys, json, {stage.module}, inpo.cli; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('inpo', 'evaluation', 'flows'))))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
        )
        deps = _entry(stage.name)["deps"]
        for module in json.loads(out.stdout):
            path = module.replace(".", "/")
            file = path + (".py" if (ROOT / (path + ".py")).is_file() else "/__init__.py")
            assert _covered(file, deps), f"{stage.name}: {module} is imported but {file} is not a dep"


def test_known_drift_is_closed() -> None:
    """The deps the hand-written dvc.yaml lacked (issue 9): generate's model code, score's world, ..."""
    assert {"evaluation/generate.py", "inpo/models"} <= set(_entry("generate")["deps"])
    assert "inpo/toyworld" in _entry("score")["deps"]
    assert {"inpo/data", "inpo/rng.py", "inpo/grid_inversion.py"} <= set(_entry("train")["deps"])
    assert "inpo/data" in _entry("sft")["deps"]
    assert "evaluation/assets" in _entry("generate")["deps"]  # the prompt tables (PIPELINE_FILES)
    assert not any(d.startswith("inpo/stages/train") for d in _entry("score")["deps"])


def test_import_reader_rules(tmp_path: Path) -> None:
    """Function-level and relative imports count, TYPE_CHECKING blocks do not, lazy strings do."""
    pkg = tmp_path / "inpo"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from . import hidden\n"
        "def f():\n    from .sub import leaf\n"
        "LAZY = 'inpo.lazy:Thing'\n"
    )
    for name in ("hidden.py", "lazy.py", "sub/leaf.py", "unused.py"):
        (pkg / name).write_text("")
    closure = import_closure(["inpo.a"], tmp_path)
    assert closure == {"inpo", "inpo.a", "inpo.sub", "inpo.sub.leaf", "inpo.lazy"}
    assert dep_paths(closure, tmp_path) == ["inpo/__init__.py", "inpo/a.py", "inpo/lazy.py", "inpo/sub"]


def test_code_deps_are_per_stage() -> None:
    prepare = code_deps(next(s for s in STAGES if s.name == "prepare"), ROOT)
    assert "inpo/train" not in prepare and "inpo/models" not in prepare  # prepare runs no model
    assert "inpo/stages/prepare.py" in prepare and "inpo/stages/train.py" not in prepare


def test_flow_order_and_tracking_come_from_the_table() -> None:
    cfg = load_config(DEFAULT_PARAMS)
    assert pipeline_stages(cfg, "report", ROOT)[0] == "world_pairs"
    files = tracked_files(cfg, "train@dpo")
    assert files["model"] == layout.train_weights(cfg, "dpo")
    assert layout.train_summary(cfg, "dpo") in files["summary"]


def test_mlflow_logs_only_declared_outputs() -> None:
    """What MLflow logs of a stage is a file DVC restores with it (a run-cache restore brings back
    matching step logs, never another config's)."""
    cfg = load_config(DEFAULT_PARAMS)
    for stage in STAGES:
        for name in stage.dvc_names(cfg):
            item = name.partition("@")[2]
            declared = [p.as_posix() for p in stage.declared(cfg, item)]
            files = tracked_files(cfg, name)
            logged = [*files["summary"], *files["steps"], *(p for p, _ in files["artifacts"])]
            logged += [files["model"]] if files["model"] is not None else []
            for path in logged:
                assert _covered(Path(path).as_posix(), declared), f"{name}: {path} is not a DVC output"


def test_unknown_world_lists_the_valid_ones() -> None:
    import pytest

    from inpo.config import ConfigError
    from inpo.worlds import get_world

    with pytest.raises(ConfigError, match="world: 'mars' is not a world; expected one of toy, toy-mixed, toy-flow, pickapic"):
        get_world(load_config(DEFAULT_PARAMS, ["world=mars"]))
