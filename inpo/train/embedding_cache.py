"""The VAE-latent and text-embedding cache (``train.cache_embeddings``) around :class:`BatchEncoder`,
and the identities the on-disk caches are named by.

Where. Safetensors shards (:mod:`.tensor_store`) under
``<paths.checkpoints>/cache/embeddings/<fingerprint>/``: outside DVC's cache and stage outputs, like
checkpoints, because a cache is regenerable state that must survive a DVC rerun of the stage (DVC
deletes a stage's outputs first) and is shared between stages (sft, train@inpo, train@dpo) and
resumed runs. The fingerprint (:func:`embedding_inputs`) names every setting the tensors depend on,
so a changed setting opens a fresh folder. Text embeddings are keyed by the caption text; SDXL's
time_ids are never cached with the text (each image's geometry is kept beside its latent). Needs
``data.crop: center``: random crop offsets are not part of the key.

Cost. A miss computes the missing entries of the micro-batch in one batched, no-grad pass; a hit costs
a CPU→device copy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..config import to_dict
from ..config.sections import DataConfig, ModelConfig
from ..identity import sha256_file
from .encode import BatchEncoder, EncodedBatch, ImageKey, pair_conditioning, pair_image_keys
from .tensor_store import TensorStore, digest


def _files_signature(location: str | None) -> Any:
    """A local folder/file: (relative path, size, mtime_ns) of its files, so rewritten weights (a rerun SFT
    stage) change the fingerprint; a hub id: the id itself (with the revision in the model settings)."""
    if location is None:
        return None
    path = Path(location)
    if not path.exists():
        return location
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [
        [str(p.relative_to(path)) if p != path else p.name, p.stat().st_size, p.stat().st_mtime_ns]
        for p in files
    ]


def embedding_inputs(
    data: DataConfig, mixed_precision: str, model_cfg: ModelConfig, index_path: str | Path
) -> dict[str, Any]:
    """What VAE latents and text embeddings depend on (the UNet does not matter)."""
    return {
        "kind": "embeddings",
        "family": model_cfg.family,
        "pretrained": model_cfg.pretrained,
        "revision": model_cfg.revision,
        "variant": model_cfg.variant,
        "vae": model_cfg.vae,
        "upcast_vae": model_cfg.upcast_vae,
        "sdxl_micro_conditioning": model_cfg.sdxl_micro_conditioning,
        "sd3_t5": model_cfg.sd3_t5,
        "sd3_max_sequence_length": model_cfg.sd3_max_sequence_length,
        "files": {
            "pretrained": _files_signature(model_cfg.pretrained),
            "vae": _files_signature(model_cfg.vae),
        },
        "mixed_precision": mixed_precision,
        "data": {
            k: getattr(data, k) for k in ("source", "format", "split", "resolution", "crop", "interpolation")
        },
        "pair_index_sha256": sha256_file(index_path),
    }


def model_identity(model_cfg: ModelConfig) -> dict[str, Any]:
    """The starting model's settings and its UNet files (for caches of what the UNet computes)."""
    return {
        "model": to_dict(model_cfg),
        "unet_files": {
            "unet": _files_signature(model_cfg.unet),
            "unet_lora": _files_signature(model_cfg.unet_lora),
        },
    }


def _text_name(caption: str) -> str:
    return "text/" + hashlib.sha256(caption.encode()).hexdigest()[:32]


class CachedBatchEncoder(BatchEncoder):
    """:class:`BatchEncoder` with every latent, geometry and text embedding kept in ``embeddings``."""

    def __init__(
        self, components: Any, resolution: int, embeddings: TensorStore, pair_fields: Sequence[str] = ()
    ) -> None:
        super().__init__(components, resolution, pair_fields)
        self.embeddings = embeddings

    def encode(self, dataset: Any, indices: Sequence[int], device: torch.device | str) -> EncodedBatch:
        draws = [dataset.pair_draws(int(i)) for i in indices]
        captions = [dataset.caption(int(i), d) for i, d in zip(indices, draws)]
        keys = pair_image_keys(
            indices, [d.flip_w for d in draws], [d.flip_l for d in draws], [d.caption_dropped for d in draws]
        )
        latents, geometry = self._latents(dataset, keys, device)
        b = len(indices)
        cond2 = pair_conditioning(self.components, self._text(captions), self.resolution, geometry)
        return EncodedBatch(
            latents[:b], latents[b:], cond2, keys, geometry, self.fields(dataset, indices, device)
        )

    def _latents(
        self, dataset: Any, keys: list[ImageKey], device: torch.device | str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents [2B, C, h, w] on ``device`` and geometry [2B, 4] int64 (CPU) of ``keys``."""
        from ..models import encode_images

        store = self.embeddings
        found = [store.get(k.latent_name) if k.geometry_name in store else None for k in keys]
        geometry = [store.get(k.geometry_name) if x is not None else None for k, x in zip(keys, found)]
        missing_pairs = sorted({keys[i].pair_index for i, x in enumerate(found) if x is None})
        if missing_pairs:
            examples = {e.pair_index: e for e in dataset.__getitems__(missing_pairs)}
            todo = [i for i, x in enumerate(found) if x is None]
            images = []
            for i in todo:
                key, example = keys[i], examples[keys[i].pair_index]
                winner = key.side == "w"
                images.append(example.image_w if winner else example.image_l)
                size, crop = (
                    (example.original_size_w, example.crop_top_left_w)
                    if winner
                    else (example.original_size_l, example.crop_top_left_l)
                )
                geometry[i] = torch.tensor([*size, *crop], dtype=torch.int64)
            encoded = encode_images(self.components, torch.stack(images).to(device))
            for j, i in enumerate(todo):
                store.put(keys[i].latent_name, encoded[j])
                store.put(keys[i].geometry_name, geometry[i])  # type: ignore[arg-type]
                found[i] = encoded[j]
        latents = torch.stack([x.to(device) for x in found if x is not None])
        return latents, torch.stack([g.to(torch.int64) for g in geometry if g is not None])

    def _text(self, captions: list[str]) -> Any:
        """Text conditioning of ``captions`` (B rows). SDXL rows carry placeholder time_ids
        (R, R, 0, 0, R, R): :func:`pair_conditioning` replaces them with each image's own."""
        from ..models import Conditioning, encode_prompts

        unique = list(dict.fromkeys(captions))
        device = self.components.text_encoder.device
        square = (self.resolution, self.resolution)
        rows = {c: row for c in unique if (row := self._stored_text(c, square)) is not None}
        todo = [c for c in unique if c not in rows]
        if todo:
            fresh = encode_prompts(
                self.components,
                todo,
                resolution=self.resolution,
                original_sizes=[square] * len(todo),  # placeholders (see pair_conditioning)
                crop_top_lefts=[(0, 0)] * len(todo),
            )
            for j, caption in enumerate(todo):
                row = fresh.select([j])
                for name, tensor in row.tensors().items():
                    if name != "time_ids":  # per image, not per caption
                        self.embeddings.put(f"{_text_name(caption)}/{name}", tensor)
                rows[caption] = row
        return Conditioning.cat([rows[c].to(device) for c in captions])

    def _stored_text(self, caption: str, square: tuple[int, int]) -> Any:
        from ..models import Conditioning, constant_time_ids

        prefix = _text_name(caption)
        hidden = self.embeddings.get(f"{prefix}/encoder_hidden_states")
        if hidden is None:
            return None
        tensors = {"encoder_hidden_states": hidden}
        if f"{prefix}/text_embeds" in self.embeddings:  # SDXL, SD3
            pooled = self.embeddings.get(f"{prefix}/text_embeds")
            assert pooled is not None
            tensors["text_embeds"] = pooled
            if self.components.is_sdxl:
                tensors["time_ids"] = constant_time_ids(1, square)
        return Conditioning.from_tensors(tensors)

    def flush(self) -> None:
        self.embeddings.flush()


def build_batch_encoder(
    components: Any,
    data: DataConfig,
    *,
    cache_dir: Path | None,
    image_inputs: dict[str, Any] | None = None,
    pair_fields: Sequence[str] = (),
    rank: int = 0,
) -> BatchEncoder:
    """The plain encoder, or with ``cache_dir`` (``train.cache_embeddings``) the cached one, opened under
    ``cache_dir/<fingerprint of image_inputs>``."""
    if cache_dir is None:
        return BatchEncoder(components, data.resolution, pair_fields)
    if data.crop != "center":
        raise ValueError(
            f"data.crop={data.crop!r}: train.cache_embeddings needs data.crop: center (random crop "
            "offsets are not part of the cache key)"
        )
    if image_inputs is None:
        raise ValueError("build_batch_encoder: a cached encoder needs the image inputs it is named by")
    store = TensorStore(cache_dir / digest(image_inputs), meta=image_inputs, rank=rank)
    return CachedBatchEncoder(components, data.resolution, store, pair_fields)
