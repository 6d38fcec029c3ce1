"""Prompt sets and evaluation items: (prompt_set, prompt_id, prompt, seed), the same for every model.

    items = eval_items(cfg.eval, base_seed=cfg.sample.seed)

Sets, by name: ``parti`` (the shipped Parti-Prompts TSV, 1632 prompts, category = Parti category),
``hpdv2`` (a user folder of four JSON lists of 800 prompts, category = style), ``toy`` (the toy
world's held-out prompts, imported lazily from :data:`TOY_PROMPTS`), or a path to any
one-prompt-per-line text file. Seeds: prompt ``i`` with ``k`` seeds per prompt gets
``base_seed + i·k + j`` for ``j < k`` (one seed per prompt: its index).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluation.imports import import_object

if TYPE_CHECKING:
    from inpo.config.sections import EvalConfig

ASSETS = Path(__file__).resolve().parent / "assets"
PIPELINE_FILES = ("evaluation/assets",)  # read at run time: a dependency of the stages that import this
PARTI_TSV = ASSETS / "parti_prompts.tsv"
PARTI_HEADER = ["Prompt", "Category", "Challenge", "Note"]
PARTI_ROWS = 1632
HPDV2_STYLES = ("anime", "concept-art", "paintings", "photo")
HPDV2_PROMPTS_PER_STYLE = 800

# The toy world's held-out prompts, imported only when the "toy" set is asked for: () -> sequence of str.
TOY_PROMPTS = "inpo.toyworld.prompts:heldout_prompts"


@dataclass(frozen=True)
class Prompt:
    prompt_id: str
    text: str
    category: str = ""


@dataclass(frozen=True)
class EvalItem:
    """One image to generate and score: the same (prompt_set, prompt_id, seed) for every model."""

    prompt_set: str
    prompt_id: str
    prompt: str
    seed: int
    category: str = ""


@dataclass(frozen=True)
class PromptSet:
    name: str
    prompts: tuple[Prompt, ...]

    def __len__(self) -> int:
        return len(self.prompts)

    def items(self, seeds_per_prompt: int = 1, base_seed: int = 0) -> list[EvalItem]:
        """Every prompt × ``seeds_per_prompt`` fixed seeds (``base_seed + index·k + j``)."""
        if seeds_per_prompt < 1:
            raise ValueError(f"seeds_per_prompt must be >= 1, got {seeds_per_prompt}")
        return [
            EvalItem(self.name, p.prompt_id, p.text, base_seed + i * seeds_per_prompt + j, p.category)
            for i, p in enumerate(self.prompts)
            for j in range(seeds_per_prompt)
        ]


def load_parti(path: str | Path = PARTI_TSV, expected_rows: int | None = PARTI_ROWS) -> PromptSet:
    """Parti-Prompts TSV read with CSV quoting off (data row 1561 starts with a double quote)."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or rows[0] != PARTI_HEADER:
        raise ValueError(
            f"{path}: expected the header {PARTI_HEADER}, got {rows[0] if rows else 'an empty file'}"
        )
    prompts = []
    for number, row in enumerate(rows[1:], start=1):
        if len(row) != len(PARTI_HEADER) or not row[0]:
            raise ValueError(
                f"{path}: data row {number} has {len(row)} fields {row!r}; expected 4, a prompt first"
            )
        prompts.append(Prompt(f"{number - 1:04d}", row[0], row[1]))
    if expected_rows is not None and len(prompts) != expected_rows:
        raise ValueError(f"{path}: {len(prompts)} data rows; expected {expected_rows}")
    return PromptSet("parti", tuple(prompts))


def _read_hpdv2_style(file: Path) -> list[str]:
    if not file.is_file():
        raise FileNotFoundError(
            f"{file}: missing; the HPDv2 folder needs {', '.join(s + '.json' for s in HPDV2_STYLES)}"
        )
    try:
        data: Any = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{file}: not valid JSON ({err})") from err
    if not isinstance(data, list):
        raise ValueError(
            f"{file}: expected a JSON list of {HPDV2_PROMPTS_PER_STYLE} strings, got {type(data).__name__}"
        )
    if len(data) != HPDV2_PROMPTS_PER_STYLE:
        raise ValueError(f"{file}: {len(data)} prompts; expected {HPDV2_PROMPTS_PER_STYLE}")
    for i, text in enumerate(data):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{file}: item {i} is {text!r}; expected a non-empty string")
    return data


def load_hpdv2(folder: str | Path | None) -> PromptSet:
    """The HPDv2 benchmark: ``anime``, ``concept-art``, ``paintings``, ``photo`` × 800 prompts."""
    if folder is None:
        raise ValueError(
            "prompt set 'hpdv2' needs eval.hpdv2_dir: a folder with the four HPDv2 benchmark JSON files"
        )
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"eval.hpdv2_dir {str(root)!r} is not a folder")
    prompts = []
    for style in HPDV2_STYLES:
        texts = _read_hpdv2_style(root / f"{style}.json")
        prompts += [Prompt(f"{style}/{i:03d}", text, style) for i, text in enumerate(texts)]
    return PromptSet("hpdv2", tuple(prompts))


def load_text_prompts(path: str | Path, name: str | None = None) -> PromptSet:
    """One prompt per line (UTF-8); blank lines skipped; ids are the 0-based order of the prompts."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise ValueError(f"{path}: no prompts (expected one prompt per line)")
    return PromptSet(name or path.stem, tuple(Prompt(f"{i:05d}", t) for i, t in enumerate(texts)))


def load_toy_prompts() -> PromptSet:
    texts = list(import_object(TOY_PROMPTS)())
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text:
            raise ValueError(f"{TOY_PROMPTS}: prompt {i} is {text!r}; expected a non-empty string")
    return PromptSet("toy", tuple(Prompt(f"{i:04d}", t) for i, t in enumerate(texts)))


# name → loader(hpdv2_dir); anything else must be a path to a one-prompt-per-line text file.
PROMPT_SETS: dict[str, Callable[[str | Path | None], PromptSet]] = {
    "parti": lambda _: load_parti(),
    "hpdv2": load_hpdv2,
    "toy": lambda _: load_toy_prompts(),
}


def prompt_set_name(spec: str) -> str:
    """The name a prompt set's items and metrics carry: a registered name, or a text file's stem."""
    return spec if spec in PROMPT_SETS else Path(spec).stem


def load_prompt_set(name: str, hpdv2_dir: str | Path | None = None) -> PromptSet:
    """A prompt set by registered name, or a one-prompt-per-line text file by path."""
    if name in PROMPT_SETS:
        return PROMPT_SETS[name](hpdv2_dir)
    if Path(name).is_file():
        return load_text_prompts(name)
    raise KeyError(
        f"unknown prompt set {name!r}; valid: {', '.join(sorted(PROMPT_SETS))}, or a path to a text file"
    )


def check_prompt_set(name: str, key: str) -> None:
    """A registered prompt set name or a readable UTF-8 text file with at least one prompt; an
    :class:`inpo.errors.InputError` naming the config ``key`` otherwise (before any generation)."""
    from inpo.errors import InputError

    if name in PROMPT_SETS:
        return
    path = Path(name)
    if not path.is_file():
        raise InputError(
            f"{key}: {name!r} is neither a prompt set ({', '.join(sorted(PROMPT_SETS))}) "
            "nor an existing text file (one prompt per line)"
        )
    try:
        lines = [x for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{key}: {path}: cannot be read as UTF-8 text: {err}") from None
    if not lines:
        raise InputError(f"{key}: {path}: no prompts (expected one per line)")


def check_prompt_sets(eval_cfg: EvalConfig) -> None:
    """Every ``eval.prompt_sets`` entry through :func:`check_prompt_set`."""
    for i, name in enumerate(eval_cfg.prompt_sets):
        check_prompt_set(name, f"eval.prompt_sets[{i}]")


def eval_items(eval_cfg: EvalConfig, base_seed: int = 0) -> list[EvalItem]:
    """Every configured prompt set's items, with ``eval.seeds_per_prompt[set]`` seeds (default 1)."""
    items: list[EvalItem] = []
    for spec in eval_cfg.prompt_sets:
        prompt_set = load_prompt_set(spec, eval_cfg.hpdv2_dir)
        seeds = eval_cfg.seeds_per_prompt.get(spec, eval_cfg.seeds_per_prompt.get(prompt_set.name, 1))
        items += prompt_set.items(seeds, base_seed)
    return items
