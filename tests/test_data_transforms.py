"""Pair transforms and per-pair draws: hand-derived pixels, independent flips, batch-independent draws."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from inpo.config.sections import DataConfig
from inpo.data.dataset import PairBatch, PairDataset, collate_pairs
from inpo.data.filtering import PAIRS_FILE, prepare_pairs
from inpo.data.fixtures import write_pickapic_fixture
from inpo.data.transforms import crop_offsets, resized_size, to_signed_unit, transform_image
from inpo.rng import pair_generator

R = 8


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    fx = write_pickapic_fixture(root / "pairs", n_rows=48, n_ties=0, n_corrupt=0, n_shards=2, seed=3)
    cfg = DataConfig(source=str(fx.root), resolution=R, crop="random", random_flip=True, caption_dropout=0.5)
    prepare_pairs(cfg, root / "out", progress=False)
    return root / "out" / PAIRS_FILE, cfg, fx


def test_shorter_side_resize_and_centre_crop_give_hand_derived_pixels():
    # A 16x8 (W x H) image whose red channel is a ramp 8x along x (constant along y), green 8x + 100,
    # blue 200 - 8x. Resolution 4: the shorter side 8 -> 4, the longer 16 -> int(4 * 16 / 8) = 8, a 2x
    # reduction. PIL's antialiased bilinear filter at scale 2 is a triangle of half-width 2 input pixels:
    # output pixel i (centre at input 2i + 1) weighs inputs 2i-1, 2i, 2i+1, 2i+2 by 1/8, 3/8, 3/8, 1/8,
    # so a ramp a*x becomes a*(2i + 0.5) wherever the four inputs exist (1 <= i <= 6). The centre crop
    # of the 8x4 image starts at left = round((8 - 4) / 2) = 2, top = 0: outputs i = 2..5, red
    # 8*(2i + 0.5) = 36, 52, 68, 84; green +100; blue 200 - red. Rows are constant.
    x = np.arange(16)
    pixels = np.zeros((8, 16, 3), dtype=np.uint8)
    pixels[:, :, 0], pixels[:, :, 1], pixels[:, :, 2] = 8 * x, 8 * x + 100, 200 - 8 * x
    out = transform_image(Image.fromarray(pixels), 4, "center", "bilinear", False, (0.0, 0.0))
    red = np.array([36, 52, 68, 84])
    expected = np.stack([red, red + 100, 200 - red]).astype(np.float32)  # [3, 4] per column
    assert out.shape == (3, 4, 4) and out.dtype == torch.float32
    want = torch.from_numpy(expected / 127.5 - 1.0)[:, None, :].expand(3, 4, 4)
    torch.testing.assert_close(out, want, atol=1e-6, rtol=0)
    flipped = transform_image(Image.fromarray(pixels), 4, "center", "bilinear", True, (0.0, 0.0))
    torch.testing.assert_close(flipped, want.flip(-1), atol=1e-6, rtol=0)


def test_centre_crop_offsets_and_sizes_follow_torchvision_rounding():
    assert resized_size(16, 8, 4) == (8, 4)
    assert resized_size(33, 18, 16) == (29, 16)  # int(16 * 33 / 18) = int(29.33)
    assert resized_size(18, 25, 16) == (16, 22)  # int(16 * 25 / 18) = int(22.2)
    # (top, left) = round((H - R) / 2), round((W - R) / 2); Python rounds halves to even: 1.5 -> 2, 2.5 -> 2.
    assert crop_offsets(7, 4, 4, "center", (0.0, 0.0)) == (0, 2)
    assert crop_offsets(4, 9, 4, "center", (0.0, 0.0)) == (2, 0)
    # A 7x4 image at resolution 4 is not resized; its columns 2..5 are kept: values 10 * column.
    pixels = np.repeat((10 * np.arange(7, dtype=np.uint8))[None, :, None], 4, 0).repeat(3, 2)
    out = transform_image(Image.fromarray(pixels), 4, "center", "bilinear", False, (0.0, 0.0))
    torch.testing.assert_close(
        out[0, 0], torch.tensor([20.0, 30.0, 40.0, 50.0]) / 127.5 - 1, atol=1e-6, rtol=0
    )
    # Random crop: offsets uniform over 0..(size - R): u = 0.99 -> the last offset, u = 0 -> the first.
    assert crop_offsets(7, 9, 4, "random", (0.99, 0.0)) == (5, 0)
    assert crop_offsets(7, 9, 4, "random", (0.0, 0.99)) == (0, 3)


def test_pixel_range_ends_are_exactly_minus_one_and_one():
    img = Image.fromarray(np.array([[[0, 255, 0]]], dtype=np.uint8))
    assert to_signed_unit(img).flatten().tolist() == [-1.0, 1.0, -1.0]


def test_batches_have_the_promised_shapes_and_range(prepared):
    index_path, cfg, _ = prepared
    dataset = PairDataset(index_path, cfg, seed=0)
    batch = collate_pairs(dataset.__getitems__([0, 7, 30, 47]))
    assert isinstance(batch, PairBatch) and len(batch) == 4
    assert batch.pair_index.tolist() == [0, 7, 30, 47] and batch.pair_index.dtype == torch.int64
    for images in (batch.image_w, batch.image_l):
        assert images.shape == (4, 3, R, R) and images.dtype == torch.float32
        assert images.min() >= -1.0 and images.max() <= 1.0
    assert batch.flip_w.dtype == batch.caption_dropped.dtype == torch.bool
    moved = batch.to("cpu", dtype=torch.float64)
    assert moved.image_w.dtype == torch.float64 and moved.captions == batch.captions


def test_same_pair_and_epoch_give_the_same_draws_whatever_the_batch(prepared):
    index_path, cfg, _ = prepared
    a = PairDataset(index_path, cfg, seed=5)
    b = PairDataset(index_path, cfg, seed=5)
    first = {e.pair_index: e for e in a.__getitems__([3, 11, 40, 20])}
    second = {e.pair_index: e for e in b.__getitems__([40, 3])} | {20: b[20], 11: b[11]}
    for i in (3, 11, 40, 20):
        x, y = first[i], second[i]
        for flag in ("caption", "flip_w", "flip_l", "caption_dropped"):
            assert getattr(x, flag) == getattr(y, flag)
        assert torch.equal(x.image_w, y.image_w) and torch.equal(x.image_l, y.image_l)


def test_a_new_epoch_draws_anew(prepared):
    index_path, cfg, _ = prepared
    dataset = PairDataset(index_path, cfg, seed=5)
    everything = list(range(len(dataset)))
    epoch0 = dataset.__getitems__(everything)
    dataset.set_epoch(1)
    epoch1 = dataset.__getitems__(everything)
    flags0 = [(e.flip_w, e.flip_l, e.caption_dropped) for e in epoch0]
    flags1 = [(e.flip_w, e.flip_l, e.caption_dropped) for e in epoch1]
    assert flags0 != flags1
    assert any(not torch.equal(x.image_w, y.image_w) for x, y in zip(epoch0, epoch1))  # random crops move too
    dataset.set_epoch(0)
    assert [(e.flip_w, e.flip_l, e.caption_dropped) for e in dataset.__getitems__(everything)] == flags0


def test_flips_are_independent_for_winner_and_loser_and_flags_tell_the_truth(prepared):
    index_path, cfg, _ = prepared
    center = replace(cfg, crop="center")
    flipped = PairDataset(index_path, center, seed=0).__getitems__(list(range(48)))
    plain = PairDataset(index_path, replace(center, random_flip=False), seed=0).__getitems__(list(range(48)))
    # 48 pairs with two fair coins each: every one of the four (flip_w, flip_l) combinations occurs
    # (the chance one is missing is below 4 * (3/4)^48 ~ 4e-6; the draws are fixed by the seed).
    assert len({(e.flip_w, e.flip_l) for e in flipped}) == 4
    for f, p in zip(flipped, plain):
        assert torch.equal(f.image_w, p.image_w.flip(-1) if f.flip_w else p.image_w)
        assert torch.equal(f.image_l, p.image_l.flip(-1) if f.flip_l else p.image_l)
        assert not (p.flip_w or p.flip_l)


def test_caption_dropout_is_one_shared_draw_of_the_pair_data_stream(prepared):
    index_path, cfg, fx = prepared
    dataset = PairDataset(index_path, cfg, seed=9)
    dataset.set_epoch(2)
    batch = collate_pairs(dataset.__getitems__(list(range(48))))
    captions = dataset.index.captions
    for i, (caption, dropped) in enumerate(zip(batch.captions, batch.caption_dropped.tolist())):
        # The pair's first data-stream uniform decides: dropped iff u0 < caption_dropout (0.5).
        u0 = torch.rand(7, generator=pair_generator(9, 2, i, "data"), dtype=torch.float64)[0].item()
        assert dropped == (u0 < 0.5)
        assert caption == ("" if dropped else captions[i])  # one caption per pair: both sides get it
    assert 0 < int(batch.caption_dropped.sum()) < 48
    never = PairDataset(index_path, replace(cfg, caption_dropout=0.0), seed=9)
    always = PairDataset(index_path, replace(cfg, caption_dropout=1.0), seed=9)
    assert all(e.caption == captions[e.pair_index] for e in never.__getitems__(list(range(48))))
    assert all(e.caption == "" and e.caption_dropped for e in always.__getitems__(list(range(48))))


def test_dataloader_with_workers_gives_the_same_batch(prepared):
    index_path, cfg, _ = prepared
    dataset = PairDataset(index_path, cfg, seed=1)
    direct = collate_pairs(dataset.__getitems__([0, 1, 2, 3]))
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, collate_fn=collate_pairs, num_workers=1)
    from_worker = next(iter(loader))
    assert torch.equal(from_worker.image_w, direct.image_w) and from_worker.captions == direct.captions
