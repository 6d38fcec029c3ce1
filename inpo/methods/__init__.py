"""Training methods as a registry: one module per method, one line each in :data:`METHODS`.

    method = build_method("inpo", cfg.method)   # built from its own section, method.inpo
    method.prepare(ctx)                         # once per run (the loop does this)
    out = method.objective(batch, draws)        # loss and metrics of one micro-batch

A new method is a module with a :class:`Method` subclass, its line here, and its config section (a
field of :class:`inpo.config.sections.MethodsConfig` named like the method, and ``params.yaml``).
"""

from __future__ import annotations

from typing import Any

from .base import Method, MethodContext, ObjectiveOutput, PairDraws, TimestepSampling, draw_pairs
from .dpo import DpoMethod
from .inpo import InpoMethod
from .kto import KtoMethod
from .sft import SftMethod
from .smpo import SmpoMethod

METHODS: dict[str, type[Method]] = {
    "sft": SftMethod,
    "dpo": DpoMethod,
    "kto": KtoMethod,
    "inpo": InpoMethod,
    "smpo": SmpoMethod,
}


def build_method(name: str, methods_cfg: Any) -> Method:
    """The method ``name`` built from its section ``methods_cfg.<name>`` (a MethodsConfig)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}")
    section = getattr(methods_cfg, name, None)
    if section is None:
        raise ValueError(f"method {name!r} has no config section method.{name}")
    return METHODS[name](section)


__all__ = [
    "METHODS",
    "Method",
    "MethodContext",
    "ObjectiveOutput",
    "PairDraws",
    "TimestepSampling",
    "build_method",
    "draw_pairs",
]
