"""Helpers for tests and benchmarks: tiny random models in the real on-disk layouts."""

from __future__ import annotations

from .tiny_models import write_tiny_pixel, write_tiny_sd2, write_tiny_sd3, write_tiny_sd15, write_tiny_sdxl

__all__ = ["write_tiny_pixel", "write_tiny_sd15", "write_tiny_sd2", "write_tiny_sd3", "write_tiny_sdxl"]
