"""Tiny random-weight scorer models in the real on-disk layouts (tests only: their scores are no result).

model, processor = write_tiny_pickscore(root / "pickscore", words)   # eval.pickscore.model / .processor
files = write_tiny_open_clip(root / "open_clip")                     # HPS .pt, CLIP safetensors, arch JSON
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

TINY_OPEN_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def write_tiny_clip(
    folder: Path, projection_dim: int, vocab_size: int = 49408, bos: int = 0, eos: int = 1
) -> Path:
    """A tiny transformers CLIPModel (hidden 32, 1 layer, 32 px images) + its image processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    text = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    vision = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32
    )
    vision["patch_size"] = 8
    CLIPModel(
        CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)
    ).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        folder
    )
    return folder


def write_tiny_pickscore(root: Path, words: Sequence[str]) -> tuple[Path, Path]:
    """(model folder, processor folder) of a tiny PickScore: a CLIPModel (projection 16) and a
    word-level CLIP tokenizer with the image processor, as ``eval.pickscore.model`` / ``.processor``."""
    from transformers import AutoTokenizer, CLIPImageProcessor

    from ..tokenizer import write_clip_tokenizer

    processor = write_clip_tokenizer(root / "processor", words=list(words))
    tok = AutoTokenizer.from_pretrained(processor)
    vocab = len(json.loads((processor / "vocab.json").read_text()))
    model = write_tiny_clip(root / "model", 16, vocab, tok.bos_token_id, tok.eos_token_id)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        processor
    )
    return model, processor


def write_tiny_open_clip(root: Path) -> dict[str, Path]:
    """One tiny open_clip CLIP saved as HPS's ``.pt`` layout and as CLIP safetensors, with its arch JSON
    (``eval.hps.architecture`` / ``.checkpoint``, ``eval.clip.architecture`` / ``.pretrained``)."""
    import open_clip
    from safetensors.torch import save_file

    root.mkdir(parents=True, exist_ok=True)
    config = root / "tiny-vit.json"
    config.write_text(json.dumps(TINY_OPEN_CLIP))
    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_OPEN_CLIP)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state}, root / "HPS_v2_compressed.pt")  # the HPS file's layout
    save_file(state, str(root / "clip.safetensors"))
    return {
        "config": config,
        "hps": root / "HPS_v2_compressed.pt",
        "clip": root / "clip.safetensors",
        "root": root,
    }
