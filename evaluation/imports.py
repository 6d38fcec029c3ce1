"""Resolve ``"package.module:attribute"`` import paths, so registries import heavy code only when asked."""

from __future__ import annotations

import importlib
from typing import Any


def import_object(path: str) -> Any:
    """Resolve ``"package.module:attribute"``; a clear error names the path when it does not resolve."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"expected an import path of the form 'package.module:attribute', got {path!r}")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ImportError(f"{module_name} has no attribute {attribute!r} (import path {path!r})") from None
