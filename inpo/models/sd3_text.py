"""SD3 / SD3.5 text conditioning: two CLIP encoders and T5, as ``StableDiffusion3Pipeline.encode_prompt``.

For B captions (CLIP's 77 tokens, T5's ``model.sd3_max_sequence_length`` tokens N):

    h_L, h_G   = penultimate hidden states of CLIP-L and CLIP-bigG         [B, 77, 768], [B, 77, 1280]
    p_L, p_G   = their projected pooled embeddings (``text_embeds``)       [B, 768], [B, 1280]
    clip       = pad(h_L ‖ h_G, to T5's width D)                           [B, 77, D]
    c          = clip ⊕ T5(ids)  along the sequence                        [B, 77 + N, D]
    pooled     = p_L ‖ p_G                                                 [B, 2048]

``model.sd3_t5``: ``load`` runs T5; ``zeros`` puts N zero tokens in its place (what the pipeline does
without ``text_encoder_3``, so a model trained so samples identically there); ``drop`` leaves them
out (c is the 77 CLIP tokens). D is the transformer's ``joint_attention_dim``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from .conditioning import Conditioning, tokenize

if TYPE_CHECKING:
    from .loading import Components


def _clip(encoder: torch.nn.Module, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(penultimate hidden states [B, 77, W], projected pooled embedding [B, P]) of one CLIP encoder."""
    out = encoder(ids, output_hidden_states=True)
    return out.hidden_states[-2], out.text_embeds


def t5_tokens(components: Components, captions: list[str], width: int) -> torch.Tensor | None:
    """T5's [B, N, width] token embeddings as ``components.t5_mode`` says (None: ``drop``)."""
    n, device = components.t5_max_length, components.text_encoder.device
    if components.t5_mode == "drop":
        return None
    if components.t5_mode == "zeros":
        return torch.zeros(len(captions), n, width, device=device, dtype=components.text_encoder.dtype)
    encoder, tokenizer = components.text_encoder_3, components.tokenizer_3
    if encoder is None or tokenizer is None:
        raise ValueError("model.sd3_t5=load: the components have no T5 encoder (text_encoder_3)")
    ids = tokenizer(
        captions, padding="max_length", max_length=n, truncation=True, add_special_tokens=True, return_tensors="pt"
    ).input_ids
    return encoder(ids.to(encoder.device))[0].to(device)


@torch.no_grad()
def encode_sd3(components: Components, captions: Sequence[str]) -> Conditioning:
    """B captions → SD3 :class:`Conditioning` (``encoder_hidden_states`` c, ``text_embeds`` pooled)."""
    captions = list(captions)
    enc_l, enc_g = components.text_encoder, components.text_encoder_2
    h_l, p_l = _clip(enc_l, tokenize(components.tokenizer, captions, enc_l.device))
    h_g, p_g = _clip(enc_g, tokenize(components.tokenizer_2, captions, enc_g.device))
    device = enc_l.device
    clip = torch.cat([h_l, h_g.to(device)], dim=-1)
    width = int(components.unet.config.joint_attention_dim)
    if clip.shape[-1] > width:
        raise ValueError(
            f"SD3 text encoders: CLIP widths {h_l.shape[-1]} + {h_g.shape[-1]} exceed the transformer's "
            f"joint_attention_dim {width}"
        )
    clip = torch.nn.functional.pad(clip, (0, width - clip.shape[-1]))
    t5 = t5_tokens(components, captions, width)
    hidden = clip if t5 is None else torch.cat([clip, t5.to(clip.dtype)], dim=-2)
    return Conditioning(hidden, torch.cat([p_l, p_g.to(device)], dim=-1))
