"""Prompt sets: the shipped Parti TSV, HPDv2 folder validation, text files, the toy hook, and seeded items."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from evaluation import prompts as P
from inpo.config.sections import EvalConfig

PARTI_SHA256 = (
    "fab29e41bb512a169b56acab4cf2a41dcb675e285df2efcde6640c7dd3c440eb"  # evaluation/assets/SOURCE.md
)


def test_shipped_parti_tsv_is_the_recorded_file() -> None:
    assert hashlib.sha256(P.PARTI_TSV.read_bytes()).hexdigest() == PARTI_SHA256
    assert PARTI_SHA256 in (P.ASSETS / "SOURCE.md").read_text()


def test_parti_loads_1632_prompts_with_row_1561_intact() -> None:
    parti = P.load_parti()
    assert len(parti) == 1632
    quoted = parti.prompts[1560]  # data row 1561 (file line 1562)
    assert quoted.text.startswith('"G I G G L E" painted in thick colorful lettering')
    assert quoted.text.endswith("splotch of exploding white paint.")
    assert quoted.category == "Illustrations" and quoted.prompt_id == "1560"
    assert parti.prompts[0] == P.Prompt("0000", "bond", "Abstract")
    assert len({p.category for p in parti.prompts}) == 12
    assert sum(p.text.startswith('"') for p in parti.prompts) == 1


def test_parti_rejects_a_wrong_row_count_and_a_broken_row(tmp_path: Path) -> None:
    lines = P.PARTI_TSV.read_text(encoding="utf-8").splitlines()
    short = tmp_path / "short.tsv"
    short.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="short.tsv: 1631 data rows; expected 1632"):
        P.load_parti(short)
    broken = tmp_path / "broken.tsv"
    broken.write_text("\n".join(lines[:3] + ["a prompt\tonly two fields"]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="broken.tsv: data row 3 has 2 fields"):
        P.load_parti(broken)


def _hpdv2(folder: Path, sizes: dict[str, int] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for style in P.HPDV2_STYLES:
        n = (sizes or {}).get(style, 800)
        (folder / f"{style}.json").write_text(json.dumps([f"{style} prompt {i}" for i in range(n)]))
    return folder


def test_hpdv2_folder_loads_3200_prompts_by_style(tmp_path: Path) -> None:
    hpd = P.load_hpdv2(_hpdv2(tmp_path / "hpd"))
    assert len(hpd) == 3200 and hpd.name == "hpdv2"
    assert hpd.prompts[800] == P.Prompt("concept-art/000", "concept-art prompt 0", "concept-art")
    assert [sum(p.category == s for p in hpd.prompts) for s in P.HPDV2_STYLES] == [800] * 4


def test_hpdv2_validation_names_the_bad_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="paintings.json: 799 prompts; expected 800"):
        P.load_hpdv2(_hpdv2(tmp_path / "short", {"paintings": 799}))
    missing = _hpdv2(tmp_path / "missing")
    (missing / "photo.json").unlink()
    with pytest.raises(FileNotFoundError, match="photo.json: missing"):
        P.load_hpdv2(missing)
    wrong = _hpdv2(tmp_path / "wrong")
    (wrong / "anime.json").write_text(json.dumps({"prompts": []}))
    with pytest.raises(ValueError, match="anime.json: expected a JSON list of 800 strings, got dict"):
        P.load_hpdv2(wrong)
    (wrong / "anime.json").write_text(json.dumps(["ok"] * 799 + [7]))
    with pytest.raises(ValueError, match="anime.json: item 799 is 7"):
        P.load_hpdv2(wrong)
    (wrong / "anime.json").write_text("[not json")
    with pytest.raises(ValueError, match="anime.json: not valid JSON"):
        P.load_hpdv2(wrong)
    with pytest.raises(ValueError, match="needs eval.hpdv2_dir"):
        P.load_prompt_set("hpdv2", None)


def test_text_file_prompts_and_unknown_names(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text('a red circle\n\n  "quoted" blue square  \n', encoding="utf-8")
    prompts = P.load_prompt_set(str(path))
    assert prompts.name == "mine"
    assert prompts.prompts == (P.Prompt("00000", "a red circle"), P.Prompt("00001", '"quoted" blue square'))
    with pytest.raises(KeyError, match="valid: hpdv2, parti, toy, or a path to a text file"):
        P.load_prompt_set("drawbench")


def test_toy_prompts_are_imported_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert P.TOY_PROMPTS == "inpo.toyworld.prompts:heldout_prompts"
    (tmp_path / "toy_prompts_mod.py").write_text(
        "def heldout():\n    return ['a red circle', 'a blue square']\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(P, "TOY_PROMPTS", "toy_prompts_mod:heldout")
    assert "toy_prompts_mod" not in sys.modules
    toy = P.load_prompt_set("toy")
    assert "toy_prompts_mod" in sys.modules
    assert [p.text for p in toy.prompts] == ["a red circle", "a blue square"] and toy.name == "toy"
    # several fixed seeds per prompt: prompt i, seed j → base + i·k + j
    items = P.eval_items(EvalConfig(prompt_sets=["toy"], seeds_per_prompt={"toy": 3}), base_seed=10)
    assert [(it.prompt_id, it.seed) for it in items] == [
        ("0000", 10),
        ("0000", 11),
        ("0000", 12),
        ("0001", 13),
        ("0001", 14),
        ("0001", 15),
    ]
    monkeypatch.delitem(sys.modules, "toy_prompts_mod")


def test_eval_items_one_seed_per_prompt_is_the_prompt_index(tmp_path: Path) -> None:
    cfg = EvalConfig(
        prompt_sets=["parti", "hpdv2"], hpdv2_dir=str(_hpdv2(tmp_path / "h")), seeds_per_prompt={}
    )
    items = P.eval_items(cfg)
    assert len(items) == 1632 + 3200
    assert items[1560] == P.EvalItem(
        "parti", "1560", P.load_parti().prompts[1560].text, 1560, "Illustrations"
    )
    assert items[1632 + 801] == P.EvalItem(
        "hpdv2", "concept-art/001", "concept-art prompt 1", 801, "concept-art"
    )
    assert P.eval_items(cfg) == items  # fixed: the same items every time, for every model
    with pytest.raises(ValueError, match="seeds_per_prompt must be >= 1"):
        P.load_parti().items(0)


def test_seeds_per_prompt_must_be_positive() -> None:
    from inpo.config import ConfigError

    with pytest.raises(ConfigError, match="eval.seeds_per_prompt.toy: 0 is out of range"):
        EvalConfig(seeds_per_prompt={"toy": 0})
