"""The error every bad input raises: a config value, a data file, a prompt file or a model folder.

The ``inpo`` command prints it as one line (``inpo <stage>: <message>``) and exits with status 2,
before any expensive work; the message names the key or file and what was expected."""

from __future__ import annotations


class InputError(ValueError):
    """A bad input, named in the message (config key, file, row)."""
