"""The toy world's prompts: every (colour, shape, background) combination, split once and for all.

120 combinations (6 colours × 4 shapes × 5 other background colours). The held-out split is the
fixed rule ``(colour + 2·background + 3·shape) mod 6 == 0`` on vocabulary indices: 12 prompts
(10%), chosen so every (colour, shape), (background, shape) and (colour, background) pair still
occurs in training — held-out prompts test composition, never an unseen word. Base training and
preference pairs use only :func:`training_prompts`; evaluation uses :func:`heldout_prompts`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .world import COLOURS, SHAPES, parse_prompt, prompt_for

if TYPE_CHECKING:
    from ..config import Config
    from ..config.sections import ToyConfig

_COLOURS = list(COLOURS)


def _is_heldout(colour: str, shape: str, background: str) -> bool:
    return (_COLOURS.index(colour) + 2 * _COLOURS.index(background) + 3 * SHAPES.index(shape)) % 6 == 0


def all_prompts() -> list[str]:
    """Every prompt of the world, in vocabulary order."""
    return [prompt_for(c, s, b) for c in _COLOURS for s in SHAPES for b in _COLOURS if c != b]


def heldout_prompts(cfg: Config | ToyConfig | None = None) -> list[str]:
    """The 12 prompts never seen in base training or preference pairs.

    ``cfg`` (the whole config or its ``toy`` section) is accepted for a uniform call site; the split
    depends only on the vocabulary.
    """
    return [p for p in all_prompts() if _is_heldout(*parse_prompt(p))]


def training_prompts(cfg: Config | ToyConfig | None = None) -> list[str]:
    """The 108 prompts base training and preference pairs draw from."""
    heldout = set(heldout_prompts(cfg))
    return [p for p in all_prompts() if p not in heldout]
