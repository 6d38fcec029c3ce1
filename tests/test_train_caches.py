"""Inversion cache and embedding cache: cached == uncached, hit counts, keys, the on-disk store."""

from __future__ import annotations

import math

import pytest
import torch

from inpo import grid_inversion, inversion
from inpo.config import ConfigError
from inpo.inversion import scaled_linear_alphas_cumprod
from inpo.methods.inversion_cache import InversionCache
from inpo.train.embedding_cache import BatchEncoder, build_batch_encoder
from inpo.train.encode import ImageKey
from inpo.train.run import cache_root
from inpo.train.tensor_store import TensorStore
from tests.train_helpers import cached_encoder, make_config, make_world, read_losses, run_spec

ABAR = scaled_linear_alphas_cumprod()
# every landing case of spec §4 for 10 steps (0,1 → 1; 2..101 → 101; 102 → 201; 902..999 → 901) and more
T_EDGES = [0, 1, 2, 50, 101, 102, 333, 500, 801, 802, 901, 902, 999]


def toy_eps(x: torch.Tensor, ts: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """A deterministic eps model whose output depends on x, the timestep and the row (its "caption")."""
    shape = (-1, *([1] * (x.ndim - 1)))
    return 0.3 * x + 1e-3 * ts.to(x).view(shape) + 0.1 * rows.to(x).view(shape)


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn((n, 4, 3, 3), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode", ["corrected", "faithful"])
@pytest.mark.parametrize("steps", [4, 10])
def test_walk_then_finish_equals_the_uncached_inversion(mode, steps):
    x0 = images(len(T_EDGES))
    t = torch.tensor(T_EDGES)
    expected = inversion.invert(x0, t, toy_eps, ABAR, mode=mode, steps=steps, eta=0.0)
    walk = grid_inversion.grid_latents(x0, toy_eps, ABAR, mode=mode, steps=steps)
    assert walk.shape == (len(grid_inversion.grid_levels(mode, steps)), *x0.shape)
    got = grid_inversion.invert_from_grid(walk, x0, t, toy_eps, ABAR, mode=mode, steps=steps)
    # elementwise model and the same formulas in the same order: bit-identical, not merely close
    assert torch.equal(got.x_t, expected.x_t)
    assert torch.equal(got.eps_hat, expected.eps_hat)
    assert torch.equal(got.landing_level, expected.landing_level)
    # corrected: the one batched final partial step; faithful lands on grid levels: no call at all
    assert got.n_model_calls == (1 if mode == "corrected" else 0)


def test_walk_levels():
    # corrected, 4 steps: Δ = 250 → levels 0, 250, 500, 750; faithful 4: grid [-249, 1, 251, 501] + Δ
    assert grid_inversion.grid_levels("corrected", 4) == [0, 250, 500, 750]
    assert grid_inversion.grid_levels("faithful", 4) == [0, 1, 251, 501, 751]
    with pytest.raises(ValueError, match="unknown inversion mode"):
        grid_inversion.grid_levels("exact", 4)


def _keys(pairs, flip=False, dropped=False):
    return [ImageKey(p, s, flip, dropped) for s in ("w", "l") for p in pairs]


@pytest.mark.parametrize("mode", ["corrected", "faithful"])
def test_inversion_cache_hits_misses_and_key_parts(mode):
    steps = 5
    cache = InversionCache(TensorStore(None), ABAR, mode=mode, steps=steps)
    x0 = images(4)
    keys = _keys([7, 9])  # rows: 7w, 9w, 7l, 9l
    t1, t2 = torch.tensor([3, 999, 3, 999]), torch.tensor([500, 0, 500, 0])

    first = cache.invert(x0, t1, toy_eps, keys)
    assert (first.hits, first.misses) == (0, 4)
    # fill: corrected walks steps-1 = 4 grid steps, faithful all 5; plus corrected's final partial step
    assert first.result.n_model_calls == (4 + 1 if mode == "corrected" else 5)
    expected = inversion.invert(x0, t1, toy_eps, ABAR, mode=mode, steps=steps, eta=0.0)
    assert torch.equal(first.result.x_t, expected.x_t) and torch.equal(first.result.eps_hat, expected.eps_hat)

    second = cache.invert(x0, t2, toy_eps, keys)  # another epoch: other t, same keys
    assert (second.hits, second.misses) == (4, 0)
    assert second.result.n_model_calls == (1 if mode == "corrected" else 0)
    expected = inversion.invert(x0, t2, toy_eps, ABAR, mode=mode, steps=steps, eta=0.0)
    assert torch.equal(second.result.x_t, expected.x_t) and torch.equal(
        second.result.eps_hat, expected.eps_hat
    )

    # flip and caption dropout are part of the key: each change is a miss, and a stored entry of its own
    assert cache.invert(x0, t2, toy_eps, _keys([7, 9], flip=True)).misses == 4
    assert cache.invert(x0, t2, toy_eps, _keys([7, 9], dropped=True)).misses == 4
    assert len(cache.store) == 12


def test_partly_cached_batch_conditions_each_missing_row_on_its_own_row():
    """Rows 1 and 3 hit, 0 and 2 miss: the fill must hand eps_fn the batch rows 0 and 2 (their captions)."""
    cache = InversionCache(TensorStore(None), ABAR, mode="corrected", steps=5)
    x0, t = images(4, seed=1), torch.tensor([10, 250, 600, 999])
    keys = [ImageKey(i, "w", False, False) for i in range(4)]
    warm = cache.invert(
        x0[[1, 3]], t[[1, 3]], lambda x, ts, r: toy_eps(x, ts, torch.tensor([1, 3])[r]), keys[1::2]
    )
    assert warm.misses == 2
    mixed = cache.invert(x0, t, toy_eps, keys)
    assert (mixed.hits, mixed.misses) == (2, 2)
    expected = inversion.invert(x0, t, toy_eps, ABAR, mode="corrected", steps=5, eta=0.0)
    assert torch.equal(mixed.result.x_t, expected.x_t)


def test_store_round_trips_and_writes_atomically(tmp_path, monkeypatch):
    import safetensors.torch

    root = tmp_path / "store"
    store = TensorStore(root, meta={"kind": "test"})
    values = {"a/1": torch.randn(3, 2), "b/2": torch.arange(5, dtype=torch.int64), "c": torch.randn(4).half()}
    for name, value in values.items():
        store.put(name, value)
    assert list(root.glob("shard-*")) == []  # queued, not yet written
    shard = store.flush()
    assert shard is not None and shard.name.startswith("shard-0-")
    assert sorted(p.name for p in root.iterdir()) == sorted(["meta.json", shard.name])  # no temporary left
    reopened = TensorStore(root)
    assert len(reopened) == 3
    for name, value in values.items():
        got = reopened.get(name)
        assert got is not None and got.dtype == value.dtype and torch.equal(got, value)
    assert reopened.get("missing") is None and (reopened.hits, reopened.misses) == (3, 1)

    # a write killed half-way leaves only a dot-named temporary, which readers ignore
    def killed(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"\x00" * 10)
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_file", killed)
    writer = TensorStore(root)
    writer.put("d", torch.ones(2))
    with pytest.raises(KeyboardInterrupt):
        writer.flush()
    assert len(list(root.glob("shard-*.safetensors"))) == 1
    after = TensorStore(root)
    assert len(after) == 3 and after.get("d") is None

    # a damaged shard under a final name is named in a clear error
    (root / "shard-9-bad.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="shard-9-bad.safetensors"):
        TensorStore(root)


def test_config_rules(world, tmp_path):
    _, paths = world
    with pytest.raises(ConfigError, match="cache_on_disk"):
        make_config(tmp_path, paths, overrides=["method.inpo.inversion.cache_on_disk=true"])
    with pytest.raises(ConfigError, match="eta 0"):
        make_config(tmp_path, paths, overrides=["method.inpo.inversion.cache=true"])
    cfg = make_config(tmp_path, paths, overrides=["data.crop=random", "train.cache_embeddings=true"])
    with pytest.raises(ValueError, match="data.crop"):
        build_batch_encoder(None, cfg.data, cache_dir=tmp_path / "nowhere", image_inputs={})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("caches")
    return root, make_world(root)


def test_embedding_cache_equals_direct_encoding(world, tmp_path):
    from inpo import layout
    from inpo.data import PairDataset
    from inpo.models import load_components

    root, paths = world
    cfg = make_config(tmp_path, paths, overrides=["data.caption_dropout=0.5", "train.cache_embeddings=true"])
    components = load_components(cfg.model)
    dataset = PairDataset(layout.pair_index(cfg), cfg.data, seed=0)
    direct = BatchEncoder(components, cfg.data.resolution)
    cached = cached_encoder(cfg, components)
    seen = set()
    for epoch in (0, 1, 0):
        dataset.set_epoch(epoch)
        indices = list(range(6))
        want, got = direct.encode(dataset, indices, "cpu"), cached.encode(dataset, indices, "cpu")
        assert got.keys == want.keys
        torch.testing.assert_close(got.x0_w, want.x0_w, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got.x0_l, want.x0_l, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(
            got.cond.encoder_hidden_states, want.cond.encoder_hidden_states, rtol=1e-5, atol=1e-6
        )
        seen.update(got.keys)
    # the third pass repeats epoch 0: every latent and caption is a hit
    assert (
        any(k.flip for k in seen) and any(not k.flip for k in seen) and any(k.caption_dropped for k in seen)
    )
    cached.flush()
    reopened = cached_encoder(cfg, components)
    assert len(reopened.embeddings) == len(cached.embeddings) > 0



CACHED = ["method.inpo.inversion.model=reference", "method.inpo.inversion.eta=0"]
# A well-conditioned regime (as test_train_loop's accumulation test). Adam's first step is lr × g / (|g| + eps):
# with eps 1e-8 a rounding-sized gradient (UNet batches of other sizes) still moves a weight by ~lr; eps 1e-4
# makes the update a smooth function of the gradient, so equal gradients ⇒ equal weights to rounding.
CACHED += ["method.inpo.beta=100", "train.learning_rate=1e-4", "train.adam_eps=1e-4"]


def test_training_with_caches_equals_training_without(world, tmp_path):
    """Two InPO steps (reference inverts, eta 0): uncached vs inversion + embedding caches on disk; then a
    new run of the same config reads both caches from disk and hits from its first step."""
    import json

    from inpo.train.loop import train

    root, paths = world
    plain = make_config(tmp_path, paths, overrides=CACHED)
    on = make_config(
        tmp_path,
        paths,
        overrides=[
            *CACHED,
            "method.inpo.inversion.cache=true",
            "method.inpo.inversion.cache_on_disk=true",
            "train.cache_embeddings=true",
        ],
    )
    a = train(run_spec(plain, "inpo", "-plain"))
    b = train(run_spec(on, "inpo", "-cached"))
    c = train(run_spec(on, "inpo", "-again"))
    la, lb, lc = (read_losses(r.metrics_path) for r in (a, b, c))
    assert all(math.isfinite(v) for v in la)
    assert lb == pytest.approx(la, rel=1e-5, abs=1e-6)
    assert lc == lb  # same cached tensors, same computation: identical
    sa, sb = a.policy.state_dict(), b.policy.state_dict()
    worst = max((sa[k] - sb[k]).abs().max().item() for k in sa)
    assert worst < 1e-5, f"max weight difference {worst} "

    def records(result):
        return [json.loads(line) for line in result.metrics_path.read_text().splitlines()]

    # 2 pairs per step × 2 sides; this run's fixture has enough pairs that both steps see new pairs
    assert [r["inversion_cache_misses"] for r in records(b)] == [4.0, 4.0]
    assert [r["inversion_cache_hits"] for r in records(c)] == [4.0, 4.0]
    assert [r["inversion_calls"] for r in records(c)] == [1.0, 1.0]  # only the final partial step
    stores = [p for p in (cache_root(on) / "inversion").iterdir()]
    assert len(stores) == 1 and len(list(stores[0].glob("shard-*.safetensors"))) >= 1
    assert len(list((cache_root(on) / "embeddings").glob("*/shard-*.safetensors"))) >= 1
