"""The one config path: params.yaml → frozen, validated dataclasses; overrides; flat view."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import yaml

from inpo.config import (
    DEFAULT_PARAMS,
    Config,
    ConfigError,
    apply_overrides,
    config_from_dict,
    flatten,
    load_config,
    read_yaml,
    to_dict,
)


def test_params_yaml_loads_and_is_frozen():
    cfg = load_config()
    assert isinstance(cfg, Config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.max_steps = 3  # type: ignore[misc]


def test_params_yaml_spells_out_every_setting():
    """Every dataclass field has its line in params.yaml: no hidden defaults."""

    def keys(d, prefix=""):
        out = set()
        for k, v in d.items():
            out.add(prefix + k)
            if isinstance(v, dict):
                out |= keys(v, prefix + k + ".")
        return out

    in_yaml = keys(read_yaml(DEFAULT_PARAMS))
    in_schema = keys(to_dict(Config()))
    assert in_schema - in_yaml == set(), "settings missing from params.yaml"
    assert in_yaml - in_schema == set()


def test_override_types_and_nesting():
    cfg = load_config(
        overrides=[
            "method.inpo.beta=2000",
            "train.learning_rate=1e-5",
            "methods=[inpo, kto]",
            "model.vae=null",
        ]
    )
    assert cfg.method.inpo.beta == 2000.0 and isinstance(cfg.method.inpo.beta, float)
    assert cfg.train.learning_rate == pytest.approx(1e-5)
    assert cfg.methods == ["inpo", "kto"]
    assert cfg.model.vae is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("method.beta=3", "unknown key 'method.beta'"),
        ("train.nope=1", "unknown key 'train.nope'"),
        ("method.inpo.beta=-1", "method.inpo.beta: -1.0 is out of range; expected a value > 0"),
        ("train.max_steps=abc", "train.max_steps: got 'abc' (str); expected int"),
        ("train.max_steps=1.5", "train.max_steps: got 1.5 (float); expected int"),
        ("method.inpo.inversion.mode=foo", "expected one of 'faithful', 'corrected'"),
        ("data.caption_dropout=1.5", "data.caption_dropout: 1.5 is out of range"),
        ("methods=[inpo,ppo]", "methods[1]: 'ppo' is not a method; expected one of inpo, dpo, sft, kto"),
        ("train.timestep_min=900 train.timestep_max=100", "must not exceed train.timestep_max"),
        ("method.inpo.inversion.cache=true", "inversion.cache"),
        ("train.max_steps.x=1", "'train.max_steps' is not a section"),
        ("novalue", "expected the form section.key=value"),
        ("train.learning_rate=.inf", "train.learning_rate: got inf; expected a finite number"),
        ("train.learning_rate=1e400", "train.learning_rate: got inf; expected a finite number"),
        ("method.inpo.beta=.nan", "method.inpo.beta: got nan; expected a finite number"),
        ("sample.guidance=-.inf", "sample.guidance: got -inf; expected a finite number"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=None) as err:
        load_config(overrides=override.split(" "))
    assert message in str(err.value)


def test_bool_is_not_an_int_and_int_is_a_float():
    with pytest.raises(ConfigError, match="train.max_steps"):
        config_from_dict({"train": {"max_steps": True}})
    assert config_from_dict({"train": {"learning_rate": 1}}).train.learning_rate == 1.0


def test_overrides_do_not_mutate_input():
    raw = {"train": {"max_steps": 5}}
    apply_overrides(raw, ["train.max_steps=7"])
    assert raw == {"train": {"max_steps": 5}}


def test_flatten_is_flat_and_complete():
    flat = flatten(load_config())
    assert flat["method.inpo.inversion.mode"] in ("faithful", "corrected")
    assert flat["methods"] == "inpo,dpo"
    assert all(not isinstance(v, dict | list) for v in flat.values())
    assert len(flat) == len({k for k in flat})


def test_cli_reports_config_errors(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump({"train": {"max_steps": 0}}))
    proc = subprocess.run(
        [sys.executable, "-m", "inpo.cli", "config", "--params", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "train.max_steps: 0 is out of range; expected a value > 0" in proc.stderr
    assert str(bad) in proc.stderr


def test_an_empty_params_file_is_refused_not_read_as_all_defaults(tmp_path):
    empty = tmp_path / "params.yaml"
    for text in ("", "# only a comment\n", "\n\n"):
        empty.write_text(text)
        with pytest.raises(ConfigError, match="the config file is empty") as err:
            load_config(empty)
        assert str(empty) in str(err.value)
