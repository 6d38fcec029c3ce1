"""Per-pair random streams (spec §5 "Randomness"): determinism, separate streams, batch-layout independence."""

from __future__ import annotations

import pytest
import torch

from inpo.rng import STREAMS, pair_generator, pair_generators, pair_seed, randn_per_pair


def test_same_key_same_draws() -> None:
    a = torch.randn(5, generator=pair_generator(1, 2, 3, "method"))
    b = torch.randn(5, generator=pair_generator(1, 2, 3, "method"))
    assert torch.equal(a, b)
    assert pair_seed(1, 2, 3, "method") == pair_seed(1, 2, 3, "method")
    assert 0 <= pair_seed(1, 2, 3, "method") < 2**63


def test_streams_and_keys_differ() -> None:
    base = torch.randn(5, generator=pair_generator(1, 2, 3, "method"))
    for other in (
        pair_generator(1, 2, 3, "data"),  # other stream
        pair_generator(1, 2, 4, "method"),  # other pair
        pair_generator(1, 3, 3, "method"),  # other epoch
        pair_generator(2, 2, 3, "method"),  # other run seed
    ):
        assert not torch.equal(torch.randn(5, generator=other), base)
    assert set(STREAMS) == {"data", "method"}
    # (seed, epoch, pair) = (1, 23, 4) and (12, 3, 4) must not collide: the key keeps the separators.
    assert pair_seed(1, 23, 4, "data") != pair_seed(12, 3, 4, "data")


def test_unknown_stream_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown random stream 'noise'; expected one of data, method"):
        pair_generator(0, 0, 0, "noise")


def test_draws_do_not_depend_on_batch_order_or_size() -> None:
    ids = [7, 3, 11, 5]
    batch = randn_per_pair(pair_generators(9, 0, ids, "method"), (2, 3))
    assert batch.shape == (4, 2, 3)
    reversed_batch = randn_per_pair(pair_generators(9, 0, ids[::-1], "method"), (2, 3))
    assert torch.equal(reversed_batch, batch.flip(0))
    for i, pair in enumerate(ids):  # one pair alone draws the same numbers as inside the batch
        alone = randn_per_pair(pair_generators(9, 0, torch.tensor([pair]), "method"), (2, 3))
        assert torch.equal(alone[0], batch[i])


def test_successive_draws_continue_each_pairs_stream() -> None:
    # Two calls on the same generators give the first and second draw of each pair's own stream.
    gens = pair_generators(9, 0, [1, 2], "method")
    first, second = randn_per_pair(gens, (4,)), randn_per_pair(gens, (4,))
    alone = pair_generator(9, 0, 2, "method")
    assert torch.equal(first[1], torch.randn(4, generator=alone))
    assert torch.equal(second[1], torch.randn(4, generator=alone))
    assert not torch.equal(first, second)
