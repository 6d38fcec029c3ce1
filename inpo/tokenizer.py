"""Write a transformers ``CLIPTokenizer`` folder with no hub access.

Two vocabularies:
- ``words=None``: the real CLIP BPE (49,408 tokens) rebuilt from the merges file that
  open-clip-torch's wheel ships; token ids equal OpenAI CLIP's, so it stands in for the tokenizer
  of SD1.5/SDXL in tests.
- ``words=[...]``: a tiny word-level BPE (the toy world): every byte symbol plus, for each word,
  the merges that spell it, so a known word is one token and anything else degrades to characters.
Either folder loads with ``CLIPTokenizer.from_pretrained(path)``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def _bytes_to_unicode() -> list[str]:
    from open_clip.tokenizer import bytes_to_unicode

    return list(bytes_to_unicode().values())


def _clip_merges() -> list[tuple[str, str]]:
    from open_clip.tokenizer import default_bpe

    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    return [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]  # type: ignore[misc]


def _word_merges(words: Sequence[str]) -> list[tuple[str, str]]:
    merges: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for word in sorted({w.lower() for w in words}):
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        left = symbols[0]
        for right in symbols[1:]:
            if (left, right) not in seen:
                seen.add((left, right))
                merges.append((left, right))
            left = left + right
    return merges


def write_clip_tokenizer(
    out_dir: str | Path, words: Sequence[str] | None = None, model_max_length: int = 77
) -> Path:
    """Write ``vocab.json``, ``merges.txt`` and the tokenizer config to ``out_dir``; return it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merges = _clip_merges() if words is None else _word_merges(words)
    base = _bytes_to_unicode()
    vocab = base + [v + "</w>" for v in base] + ["".join(m) for m in merges] + [BOS, EOS]
    encoder = {tok: i for i, tok in enumerate(dict.fromkeys(vocab))}
    (out / "vocab.json").write_text(json.dumps(encoder, ensure_ascii=False))
    (out / "merges.txt").write_text(
        "".join(line + "\n" for line in ["#version: 0.2", *(" ".join(m) for m in merges)])
    )
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": model_max_length,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
        "do_lower_case": True,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=1))
    (out / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}, indent=1)
    )
    return out
