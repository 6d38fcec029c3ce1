"""Build frozen dataclasses from plain dicts, with errors that name the key and the expected form.

A field may carry range metadata: ``field(default=1.0, metadata={"gt": 0})``; supported keys are
``gt``, ``ge``, ``lt``, ``le``. Types understood: ``bool``, ``int``, ``float``, ``str``, ``Literal``,
``X | None``, ``list[X]``, ``tuple[X, ...]``, ``dict[str, X]`` and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from ..errors import InputError

T = TypeVar("T")


class ConfigError(InputError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if origin in (list, tuple):
        return f"a list of {_describe(get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping of str to {_describe(get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return f"a mapping ({getattr(tp, '__name__', tp)})"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _check_range(key: str, value: Any, meta: typing.Mapping[str, Any]) -> None:
    checks = {
        "gt": (lambda v, b: v > b, ">"),
        "ge": (lambda v, b: v >= b, ">="),
        "lt": (lambda v, b: v < b, "<"),
        "le": (lambda v, b: v <= b, "<="),
    }
    for name, (ok, sym) in checks.items():
        if name in meta and value is not None and not ok(value, meta[name]):
            raise ConfigError(f"{key}: {value!r} is out of range; expected a value {sym} {meta[name]}")


def convert(tp: Any, value: Any, key: str) -> Any:
    """Convert ``value`` to type ``tp`` or raise :class:`ConfigError` naming ``key``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(f"{key}: got {value!r}; expected {_describe(tp)}")
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{key}: got null; expected {_describe(tp)}")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return convert(arg, value, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{key}: got {value!r}; expected {_describe(tp)}")
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: got {value!r}; expected {_describe(tp)}")
        items = [convert(get_args(tp)[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: got {value!r}; expected {_describe(tp)}")
        return {str(k): convert(get_args(tp)[1], v, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)  # type: ignore[arg-type]
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):  # .inf, -.inf, .nan, or 1e400 (read as inf)
                raise ConfigError(f"{key}: got {value!r}; expected a finite number")
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise ConfigError(f"{key}: unsupported field type {tp!r}")
    raise ConfigError(f"{key}: got {value!r} ({type(value).__name__}); expected {_describe(tp)}")


def from_dict(cls: type[T], data: Any, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys, bad types and bad ranges are errors."""
    where = prefix or "<root>"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: got {data!r}; expected a mapping ({cls.__name__})")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        name = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(f"unknown key '{name}'; valid keys in {where}: {', '.join(sorted(fields))}")
    hints = get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        converted = convert(hints[name], value, key)
        _check_range(key, converted, fields[name].metadata)
        kwargs[name] = converted
    for name, f in fields.items():
        if (
            name not in kwargs
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ):
            key = f"{prefix}.{name}" if prefix else name
            raise ConfigError(f"missing key '{key}'; expected {_describe(hints[name])}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from err


def check_defaults(cls: type) -> None:
    """Validate a dataclass's own defaults through the same rules (used by tests)."""
    from_dict(cls, {})
