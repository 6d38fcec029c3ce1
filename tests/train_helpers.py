"""Shared set-up for the training tests: a tiny model, a prepared pair set, and a config for them."""

from __future__ import annotations

from pathlib import Path

import torch

from inpo.config import DEFAULT_PARAMS as PARAMS
from inpo.config import Config, config_from_dict, read_yaml

WORDS = ["a", "photo", "of", "red", "blue", "green", "cat", "dog", "circle", "square"]


def make_world(root: Path, family: str = "sd15", n_rows: int = 20) -> dict[str, Path]:
    """Write a tiny model and a prepared pair index under ``root`` (once per folder)."""
    from inpo.data.fixtures import write_pickapic_fixture
    from inpo.testing import write_tiny_sd2, write_tiny_sd3, write_tiny_sd15, write_tiny_sdxl

    model = root / f"model-{family}"
    if not model.exists():
        writers = {"sd15": write_tiny_sd15, "sd2": write_tiny_sd2, "sdxl": write_tiny_sdxl, "sd3": write_tiny_sd3}
        writers[family](model, words=WORDS)
    fixture = root / "fixture"
    if not fixture.exists():
        write_pickapic_fixture(fixture, n_rows=n_rows, n_ties=2, n_corrupt=2, n_shards=2)
    return {"model": model, "fixture": fixture}


def make_config(
    root: Path, world: dict[str, Path], family: str = "sd15", overrides: list[str] = ()
) -> Config:
    cfg = config_from_dict(
        read_yaml(PARAMS),
        [
            f"model.family={family}",
            f"world={'toy' if family == 'toy' else 'pickapic'}",  # a tiny SD model: real-data world
            f"model.pretrained={world['model']}",
            f"data.source={world['fixture']}",
            "data.resolution=16",
            "train.pairs_per_device=2",
            "train.max_steps=2",
            "train.learning_rate=1e-3",
            "train.checkpoint_every=1",
            "train.validate_every=1000",
            "method.inpo.inversion.steps=4",
            f"paths.outputs={root / 'outputs'}",
            f"paths.checkpoints={root / 'checkpoints'}",
            *overrides,
        ],
    )
    from inpo import layout
    from inpo.data.filtering import prepare_pairs

    if not layout.pair_index(cfg).exists():
        prepare_pairs(cfg.data, layout.pair_index(cfg).parent, progress=False)
    return cfg


def run_spec(cfg: Config, method: str, tag: str = "", **settings):
    """The :class:`inpo.train.run.TrainRun` of ``method`` under ``cfg``, in folders named method + tag;
    ``settings``: keyword arguments of :func:`inpo.train.run.training_run` (model, max_steps, validate)."""
    from inpo import layout
    from inpo.train.run import training_run

    name = method + tag
    return training_run(
        cfg,
        method,
        index_path=layout.pair_index(cfg),
        out_dir=layout.train_dir(cfg, name),
        ckpt_root=layout.checkpoint_root(cfg, name),
        **settings,
    )


def cached_encoder(cfg: Config, components):
    """The embedding-cached batch encoder a run of ``cfg`` opens (``train.cache_embeddings``)."""
    from inpo import layout
    from inpo.train.embedding_cache import CachedBatchEncoder, build_batch_encoder, embedding_inputs
    from inpo.train.run import cache_root

    inputs = embedding_inputs(cfg.data, cfg.train.mixed_precision, cfg.model, layout.pair_index(cfg))
    encoder = build_batch_encoder(
        components, cfg.data, cache_dir=cache_root(cfg) / "embeddings", image_inputs=inputs
    )
    assert isinstance(encoder, CachedBatchEncoder)
    return encoder


def state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def read_losses(path: Path) -> list[float]:
    import json

    return [json.loads(line)["loss"] for line in path.read_text().splitlines() if line]
