"""Training caches: VAE latents and text embeddings (``train.cache_embeddings``) and the frozen
reference's DDIM-inversion walks (``method.inpo.inversion.cache``, spec §5).

Keys. An image is (pair index, side ``w``/``l``, flipped, caption dropped): its VAE latent depends on
the first three, its inversion walk on all four (the caption conditions the inversion). Text
embeddings are keyed by the caption text. SDXL's micro-conditioning (time_ids) is never cached with
the text: it is built per image from the image's own size and crop (:func:`pair_conditioning`), so
winner and loser rows each get theirs; the embedding cache keeps each image's geometry beside its
latent. Each pair's flips and caption dropout come from its
``"data"`` stream, so the same key means the same tensors in every epoch, run and method; random crops
would not (their offsets are not in the key), hence both caches need ``data.crop: center``.

Where. In memory (CPU) for the run; on disk as safetensors shards (:mod:`.tensor_store`) under
``<paths.checkpoints>/cache/{embeddings,inversion}/<fingerprint>/``: outside DVC's cache and stage
outputs, like checkpoints, because a cache is regenerable state that must survive a DVC rerun of the
stage (DVC deletes a stage's outputs first) and is shared between stages (sft, train@inpo, train@dpo)
and resumed runs. The fingerprint (:func:`embedding_fingerprint`, :func:`inversion_fingerprint`)
names every setting the tensors depend on, so a changed setting opens a fresh folder. The embedding
cache is always on disk (its point is reuse across runs); the inversion cache only with
``method.inpo.inversion.cache_on_disk``.

Cost. A miss computes the missing entries of the micro-batch in one batched, no-grad pass; a hit costs
a CPU→device copy. An inversion hit costs one model call per micro-batch (corrected mode's final
partial step), none in faithful mode. Sizes: a walk is ``L × C × h × w`` fp32 per image (SD1.5 at 512,
L = 10: 640 KiB); everything a run touches stays in memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import grid_inversion
from ..config import Config, to_dict
from ..config.sections import ModelConfig
from ..inversion import EpsFn, InversionResult
from .tensor_store import TensorStore

SIDES = ("w", "l")


@dataclass(frozen=True)
class ImageKey:
    """One training image: pair index, side ("w" winner / "l" loser), horizontally flipped, caption dropped."""

    pair_index: int
    side: str
    flip: bool
    caption_dropped: bool

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise ValueError(f"ImageKey.side must be one of {SIDES}, got {self.side!r}")

    @property
    def latent_name(self) -> str:
        return f"latent/{self.pair_index}/{self.side}/{int(self.flip)}"

    @property
    def geometry_name(self) -> str:
        """[4] int64 (original_h, original_w, crop_top, crop_left): SDXL's real micro-conditioning."""
        return f"geometry/{self.pair_index}/{self.side}/{int(self.flip)}"

    @property
    def inversion_name(self) -> str:
        return f"inv/{self.pair_index}/{self.side}/{int(self.flip)}/{int(self.caption_dropped)}"


def pair_image_keys(
    pair_index: Sequence[int], flip_w: Sequence[bool], flip_l: Sequence[bool], caption_dropped: Sequence[bool]
) -> list[ImageKey]:
    """The 2B keys of a micro-batch in the objectives' row order: winners 0..B-1, then losers."""
    winners = [
        ImageKey(int(i), "w", bool(f), bool(d)) for i, f, d in zip(pair_index, flip_w, caption_dropped)
    ]
    losers = [ImageKey(int(i), "l", bool(f), bool(d)) for i, f, d in zip(pair_index, flip_l, caption_dropped)]
    return winners + losers


# --------------------------------------------------------------------------------------------------
# Fingerprints: every setting the cached tensors depend on
# --------------------------------------------------------------------------------------------------
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


def _sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def embedding_inputs(cfg: Config, model_cfg: ModelConfig, index_path: str | Path) -> dict[str, Any]:
    """What VAE latents and text embeddings depend on (the UNet does not matter)."""
    d = cfg.data
    return {
        "kind": "embeddings",
        "family": model_cfg.family,
        "pretrained": model_cfg.pretrained,
        "revision": model_cfg.revision,
        "variant": model_cfg.variant,
        "vae": model_cfg.vae,
        "upcast_vae": model_cfg.upcast_vae,
        "sdxl_micro_conditioning": model_cfg.sdxl_micro_conditioning,
        "files": {
            "pretrained": _files_signature(model_cfg.pretrained),
            "vae": _files_signature(model_cfg.vae),
        },
        "mixed_precision": cfg.train.mixed_precision,
        "data": {
            k: getattr(d, k) for k in ("source", "format", "split", "resolution", "crop", "interpolation")
        },
        "pair_index_sha256": _sha256_file(index_path),
    }


def inversion_inputs(cfg: Config, model_cfg: ModelConfig, index_path: str | Path) -> dict[str, Any]:
    """What the reference's inversion walks depend on: the images, the reference UNet, the inversion grid."""
    inv = cfg.method.inpo.inversion
    return {
        **embedding_inputs(cfg, model_cfg, index_path),
        "kind": "inversion",
        "model": to_dict(model_cfg),
        "unet_files": {
            "unet": _files_signature(model_cfg.unet),
            "unet_lora": _files_signature(model_cfg.unet_lora),
        },
        "inversion": {"mode": inv.mode, "steps": inv.steps, "guidance": inv.guidance},
    }


def cache_root(cfg: Config) -> Path:
    return Path(cfg.paths.checkpoints) / "cache"


def embedding_fingerprint(cfg: Config, model_cfg: ModelConfig, index_path: str | Path) -> str:
    return _digest(embedding_inputs(cfg, model_cfg, index_path))


def inversion_fingerprint(cfg: Config, model_cfg: ModelConfig, index_path: str | Path) -> str:
    return _digest(inversion_inputs(cfg, model_cfg, index_path))


# --------------------------------------------------------------------------------------------------
# Inversion cache
# --------------------------------------------------------------------------------------------------
@dataclass
class CachedInversion:
    result: InversionResult  # as inversion.invert(eta=0) returns it; n_model_calls includes any fill
    hits: int
    misses: int


class InversionCache:
    """Walks of the frozen reference's eta-0 inversion (:mod:`inpo.grid_inversion`), one per image key."""

    def __init__(self, store: TensorStore, abar: torch.Tensor, *, mode: str, steps: int) -> None:
        self.store = store
        self.abar = abar
        self.mode = mode
        self.steps = steps
        self.fill_calls = 0

    def invert(
        self, x0: torch.Tensor, t: torch.Tensor, eps_fn: EpsFn, keys: Sequence[ImageKey]
    ) -> CachedInversion:
        """x0: [N, C, H, W]; t: int64 [N]; keys: N image keys; eps_fn as for :func:`inpo.inversion.invert`
        (``rows`` index 0..N-1). Missing walks are computed in one batched no-grad pass and stored."""
        if len(keys) != x0.shape[0]:
            raise ValueError(f"InversionCache.invert: {x0.shape[0]} images but {len(keys)} keys")
        walks: list[torch.Tensor | None] = [self.store.get(k.inversion_name) for k in keys]
        missing = [i for i, w in enumerate(walks) if w is None]
        fill_calls = 0
        if missing:
            rows = torch.tensor(missing, dtype=torch.long, device=x0.device)

            def fill_eps(x: torch.Tensor, ts: torch.Tensor, sub: torch.Tensor) -> torch.Tensor:
                return eps_fn(x, ts, rows[sub.to(rows.device)])

            with torch.no_grad():
                new = grid_inversion.grid_latents(
                    x0[rows], fill_eps, self.abar, mode=self.mode, steps=self.steps
                )
            fill_calls = self.steps - 1 if self.mode == "corrected" else self.steps
            self.fill_calls += fill_calls
            for j, i in enumerate(missing):
                self.store.put(keys[i].inversion_name, new[:, j])
                walks[i] = new[:, j]
        walk = torch.stack([w.to(x0.device) for w in walks if w is not None], dim=1)
        result = grid_inversion.invert_from_grid(
            walk, x0, t, eps_fn, self.abar, mode=self.mode, steps=self.steps
        )
        result.n_model_calls += fill_calls
        return CachedInversion(result, hits=len(keys) - len(missing), misses=len(missing))

    def flush(self) -> None:
        self.store.flush()


# --------------------------------------------------------------------------------------------------
# Embedding cache and the micro-batch encoder the loop calls
# --------------------------------------------------------------------------------------------------
@dataclass
class EncodedBatch:
    """A micro-batch in model space: x0_w, x0_l [B, C, h, w] fp32; cond2 (2B rows, winners then losers:
    the pair's caption or "", and for SDXL each image's own micro-conditioning); keys: the 2B image keys
    (winners, then losers); geometry [2B, 4] int64 (original_h, original_w, crop_top, crop_left)."""

    x0_w: torch.Tensor
    x0_l: torch.Tensor
    cond2: Any
    keys: list[ImageKey]
    geometry: torch.Tensor

    @property
    def cond(self) -> Any:
        """The winners' rows of ``cond2`` (B rows)."""
        return self.cond2.select(slice(0, self.x0_w.shape[0]))


def pair_conditioning(components: Any, cond: Any, resolution: int, geometry: torch.Tensor) -> Any:
    """Text conditioning of B pairs → the 2B rows the objectives use (winners, then losers).

    cond: B rows; geometry: [2B, 4] int64 rows (original_h, original_w, crop_top, crop_left), winners
    then losers. SD1.5 and toy: the text twice. SDXL: each image's own time_ids as
    ``model.sdxl_micro_conditioning`` says (constant: (R, R, 0, 0, R, R) for every row; real: the
    image's size and crop), replacing whatever time_ids ``cond`` carries."""
    from ..models.conditioning import micro_conditioning_time_ids

    pair = cond.repeat(2)
    if cond.time_ids is None:
        return pair
    rows = geometry.tolist()
    if len(rows) != len(pair):
        raise ValueError(f"pair_conditioning: {len(pair)} rows of text but {len(rows)} image geometries")
    time_ids = micro_conditioning_time_ids(
        components.micro_conditioning,
        len(rows),
        (resolution, resolution),
        [(r[0], r[1]) for r in rows],
        [(r[2], r[3]) for r in rows],
    )
    return pair.with_time_ids(time_ids)


def _text_name(caption: str) -> str:
    return "text/" + hashlib.sha256(caption.encode()).hexdigest()[:32]


class TrainCaches:
    """What the loop asks for each micro-batch: encoded images and text (cached or not) and image keys."""

    def __init__(
        self,
        components: Any,
        resolution: int,
        embeddings: TensorStore | None = None,
        inversion: InversionCache | None = None,
    ) -> None:
        self.components = components
        self.resolution = resolution
        self.embeddings = embeddings
        self.inversion = inversion

    def encode(self, dataset: Any, indices: Sequence[int], device: torch.device | str) -> EncodedBatch:
        """Encode the pairs ``indices`` of ``dataset`` (a :class:`inpo.data.PairDataset` at its epoch)."""
        from ..data import collate_pairs
        from ..models import encode_images, encode_prompts

        if self.embeddings is None:
            batch = collate_pairs(dataset.__getitems__(list(indices)))
            keys = pair_image_keys(
                indices, batch.flip_w.tolist(), batch.flip_l.tolist(), batch.caption_dropped.tolist()
            )
            geometry = torch.cat(
                [
                    torch.cat([batch.original_size_w, batch.crop_top_left_w], dim=1),
                    torch.cat([batch.original_size_l, batch.crop_top_left_l], dim=1),
                ]
            )
            x0_w = encode_images(self.components, batch.image_w.to(device))
            x0_l = encode_images(self.components, batch.image_l.to(device))
            cond = encode_prompts(
                self.components,
                batch.captions,
                resolution=self.resolution,
                original_sizes=[tuple(r) for r in batch.original_size_w.tolist()],
                crop_top_lefts=[tuple(r) for r in batch.crop_top_left_w.tolist()],
            )
            cond2 = pair_conditioning(self.components, cond, self.resolution, geometry)
            return EncodedBatch(x0_w, x0_l, cond2, keys, geometry)
        keys, captions = self._keys_without_images(dataset, indices)
        latents, geometry = self._latents(dataset, keys, device)
        b = len(indices)
        cond2 = pair_conditioning(self.components, self._text(captions), self.resolution, geometry)
        return EncodedBatch(latents[:b], latents[b:], cond2, keys, geometry)

    @staticmethod
    def _keys_without_images(dataset: Any, indices: Sequence[int]) -> tuple[list[ImageKey], list[str]]:
        """Each pair's flips and caption dropout from its "data" stream, as PairDataset draws them."""
        from ..data.transforms import draw_pair
        from ..rng import pair_generator

        draws = [
            draw_pair(
                pair_generator(dataset.seed, dataset.epoch, int(i), "data"),
                dataset.cfg.caption_dropout,
                dataset.cfg.random_flip,
            )
            for i in indices
        ]
        captions = [
            "" if d.caption_dropped else dataset.index.captions[int(i)] for i, d in zip(indices, draws)
        ]
        keys = pair_image_keys(
            indices, [d.flip_w for d in draws], [d.flip_l for d in draws], [d.caption_dropped for d in draws]
        )
        return keys, captions

    def _latents(
        self, dataset: Any, keys: list[ImageKey], device: torch.device | str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents [2B, C, h, w] on ``device`` and geometry [2B, 4] int64 (CPU) of ``keys``."""
        from ..models import encode_images

        assert self.embeddings is not None
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
                flip = example.flip_w if key.side == "w" else example.flip_l
                if flip != key.flip or example.caption_dropped != key.caption_dropped:
                    raise RuntimeError(
                        f"embedding cache: pair {key.pair_index}'s draws disagree with PairDataset "
                        f"(flip {flip} vs {key.flip}); the dataset's draw order changed"
                    )
                images.append(example.image_w if key.side == "w" else example.image_l)
                size, crop = (
                    (example.original_size_w, example.crop_top_left_w)
                    if key.side == "w"
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
        from ..models import Conditioning, constant_time_ids, encode_prompts

        assert self.embeddings is not None
        unique = list(dict.fromkeys(captions))
        device = self.components.text_encoder.device
        square = (self.resolution, self.resolution)
        rows: dict[str, Conditioning] = {}
        for caption in unique:
            prefix = _text_name(caption)
            hidden = self.embeddings.get(f"{prefix}/encoder_hidden_states")
            if hidden is not None:
                tensors = {"encoder_hidden_states": hidden}
                if f"{prefix}/text_embeds" in self.embeddings:  # SDXL
                    pooled = self.embeddings.get(f"{prefix}/text_embeds")
                    assert pooled is not None
                    tensors["text_embeds"] = pooled
                    tensors["time_ids"] = constant_time_ids(1, square)
                rows[caption] = Conditioning.from_tensors(tensors).to(device)
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
                rows[caption] = row.to(device)
        return Conditioning.cat([rows[c] for c in captions])

    def flush(self) -> None:
        """Write what is queued for the on-disk stores (each process its own shard)."""
        if self.embeddings is not None:
            self.embeddings.flush()
        if self.inversion is not None:
            self.inversion.flush()


def build_train_caches(
    cfg: Config,
    method: str,
    model_cfg: ModelConfig,
    index_path: str | Path,
    components: Any,
    abar: torch.Tensor,
    rank: int = 0,
) -> TrainCaches:
    """The caches the config asks for, opened under ``<paths.checkpoints>/cache`` where on disk."""
    inv = cfg.method.inpo.inversion
    want_inversion = method == "inpo" and inv.cache
    if (cfg.train.cache_embeddings or want_inversion) and cfg.data.crop != "center":
        raise ValueError(
            f"data.crop={cfg.data.crop!r}: train.cache_embeddings and method.inpo.inversion.cache need "
            "data.crop: center (random crop offsets are not part of the cache key)"
        )
    embeddings = None
    if cfg.train.cache_embeddings:
        meta = embedding_inputs(cfg, model_cfg, index_path)
        root = cache_root(cfg) / "embeddings" / _digest(meta)
        embeddings = TensorStore(root, meta=meta, rank=rank)
    inversion = None
    if want_inversion:
        store = TensorStore(None, rank=rank)
        if inv.cache_on_disk:
            meta = inversion_inputs(cfg, model_cfg, index_path)
            store = TensorStore(cache_root(cfg) / "inversion" / _digest(meta), meta=meta, rank=rank)
        inversion = InversionCache(store, abar, mode=inv.mode, steps=inv.steps)
    return TrainCaches(components, cfg.data.resolution, embeddings, inversion)
