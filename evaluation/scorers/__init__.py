"""Scorers behind one interface; see :mod:`evaluation.scorers.base`."""

from .base import SCORERS, Scorer, build_scorer

__all__ = ["SCORERS", "Scorer", "build_scorer"]
