"""One config path: ``params.yaml`` + dotted overrides → a frozen, validated :class:`Config`.

cfg = load_config("params.yaml", ["method.inpo.beta=2000", "train.max_steps=50"])
cfg.method.inpo.beta  # 2000.0
flatten(cfg)          # {"method.inpo.beta": 2000.0, ...} for experiment tracking
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .sections import (
    DataConfig,
    EvalConfig,
    MethodsConfig,
    ModelConfig,
    OnlineConfig,
    PathsConfig,
    RelabelConfig,
    RuntimeConfig,
    SampleConfig,
    SftStageConfig,
    ToyConfig,
    TrackingConfig,
    TrainConfig,
)
from .validate import ConfigError, from_dict

__all__ = ["Config", "ConfigError", "load_config", "apply_overrides", "flatten", "to_dict", "DEFAULT_PARAMS"]

_PACKAGE = Path(__file__).resolve().parents[1]
_CHECKOUT_PARAMS = _PACKAGE.parent / "params.yaml"
DEFAULT_PARAMS = (  # the checkout's; a non-editable install's copy of it (setup.py puts it in the wheel)
    _CHECKOUT_PARAMS if _CHECKOUT_PARAMS.is_file() else _PACKAGE / "defaults" / "params.yaml"
)


def installed_asset(path: str) -> str:
    """A relative ``inpo/assets/...`` path that does not exist from the working directory → the
    installed package's copy (a non-editable install run outside a checkout); others unchanged."""
    p = Path(path)
    if p.is_absolute() or p.parts[:2] != ("inpo", "assets") or p.exists():
        return path
    shipped = _PACKAGE.joinpath(*p.parts[1:])
    return str(shipped) if shipped.exists() else path

WORLD_BASES: dict[str, tuple[str, ...]] = {
    "toy": ("toy", "base", "out"),
    "toy-mixed": ("toy", "mixed", "base_out"),
    "toy-flow": ("toy", "flow", "base_out"),
}
"""The config key of each world's own base, what ``model.pretrained: null`` means there (a world
without one, e.g. pickapic, needs ``model.pretrained``). Kept here, not in :mod:`inpo.worlds`, so
that reading a config imports no world's code; a test checks it against each world's ``base_dir``."""


@dataclass(frozen=True)
class Config:
    world: str = "toy"  # where the pairs come from and what judges them: a name of inpo.worlds.WORLDS
    methods: list[str] = field(default_factory=lambda: ["inpo", "dpo"])  # sections of `method`
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodsConfig = field(default_factory=MethodsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sft: SftStageConfig = field(default_factory=SftStageConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    relabel: RelabelConfig = field(default_factory=RelabelConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    toy: ToyConfig = field(default_factory=ToyConfig)

    def __post_init__(self) -> None:
        if not self.methods:
            raise ConfigError("methods: expected a non-empty list of method names")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"methods: {self.methods} lists a method twice")
        known = [f.name for f in dataclasses.fields(MethodsConfig)]
        for i, name in enumerate(self.methods):
            if name not in known:
                raise ConfigError(
                    f"methods[{i}]: {name!r} is not a method; expected one of {', '.join(known)}"
                )
        base = dataclasses.replace(self.toy.base, out=installed_asset(self.toy.base.out))
        mixed = dataclasses.replace(self.toy.mixed, base_out=installed_asset(self.toy.mixed.base_out))
        flow = dataclasses.replace(self.toy.flow, base_out=installed_asset(self.toy.flow.base_out))
        object.__setattr__(self, "toy", dataclasses.replace(self.toy, base=base, mixed=mixed, flow=flow))
        if self.model.pretrained is None and self.world in WORLD_BASES:
            object.__setattr__(self, "model", dataclasses.replace(self.model, pretrained=self._world_base()))

    def _world_base(self) -> str:
        """``model.pretrained: null`` → the world's own base (:data:`WORLD_BASES`); in a world without
        one it stays null and :attr:`ModelConfig.base` says so when the model is first needed."""
        value: Any = self
        for part in WORLD_BASES[self.world]:
            value = getattr(value, part)
        return str(value)


def load_yaml_text(text: str) -> Any:
    """YAML 1.2 (as DVC reads and writes params.yaml): ``no``/``on`` stay strings, ``1e-5`` is a float.

    PyYAML's YAML 1.1 would read ``no`` as False, and ``dvc exp run -S`` rewrites params.yaml
    without quotes, so both sides must agree on 1.2.
    """
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(text)


def _parse_value(text: str) -> Any:
    """An override's value is YAML: ``2000`` → int, ``1e-5`` → float, ``[inpo, dpo]`` → list."""
    value = load_yaml_text(text) if text.strip() else ""
    if isinstance(value, str):
        # YAML 1.1 reads "1e-5" as a string; accept scientific notation as a float.
        try:
            return float(value) if any(c in value.lower() for c in "e.") else value
        except ValueError:
            return value
    return value


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``a.b.c=value`` override applied.

    Keys are checked later by :func:`from_dict`, so an unknown key names itself in the error.
    """
    out = _deep_copy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected the form section.key=value")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r}: empty key part")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: '{'.'.join(parts[: i + 1])}' is not a section")
            node = child
        node[parts[-1]] = _parse_value(text)
    return out


def _deep_copy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in d.items()}


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = load_yaml_text(path.read_text())
    except Exception as err:  # ruamel.yaml's YAMLError (parser and scanner errors)
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if raw is None:  # an empty file would silently mean "all defaults"
        raise ConfigError(f"{path}: the config file is empty; expected a mapping of sections (see params.yaml)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read ``path`` (default: the project's ``params.yaml``), apply overrides, validate."""
    raw = read_yaml(path or DEFAULT_PARAMS)
    try:
        return from_dict(Config, apply_overrides(raw, list(overrides)))
    except ConfigError as err:
        raise ConfigError(f"{path or DEFAULT_PARAMS}: {err}") from None


def config_from_dict(raw: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> Config:
    return from_dict(Config, apply_overrides(raw, list(overrides)))


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (lists kept) of a config or section, suitable for YAML/JSON."""
    return dataclasses.asdict(cfg)


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Flat ``{"section.key": value}`` view for experiment tracking; lists become strings."""
    out: dict[str, Any] = {}
    items = to_dict(cfg) if dataclasses.is_dataclass(cfg) else cfg
    for key, value in items.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif isinstance(value, list | tuple):
            out[name] = ",".join(str(v) for v in value)
        else:
            out[name] = value
    return out
