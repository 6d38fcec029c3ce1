"""SDXL micro-conditioning from real sizes and crops (``model.sdxl_micro_conditioning: real``): each image's
geometry through the dataset, winner and loser rows with their own time_ids (cached or not), 2 SDXL steps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from inpo.data.transforms import transform_image_with_geometry
from tests.train_helpers import cached_encoder, make_config, make_world, read_losses, run_spec, state

R = 16
# The fixture's (width, height) sizes (inpo.data.fixtures.DEFAULT_SIZES) at R = 16, centre crop, by hand:
# resized = shorter side 16, longer int(16 · long / short); top/left = round((resized - 16) / 2) (Python's
# round: half to even); flipped images report left' = resized_w - 16 - left (diffusers flips, then crops).
#   (24, 16): resized 24×16, top 0, left round(4.0) = 4,  flipped 24 - 16 - 4 = 4
#   (16, 28): resized 16×28, top round(6.0) = 6, left 0,  flipped 0
#   (20, 20): resized 16×16, top 0, left 0,               flipped 0
#   (33, 18): resized int(29.33) = 29×16, top 0, left round(6.5) = 6,  flipped 29 - 16 - 6 = 7
#   (18, 25): resized 16×int(22.2) = 22, top round(3.0) = 3, left 0,   flipped 0
EXPECTED_CROP = {  # (width, height) → {flipped: (top, left)}
    (24, 16): {False: (0, 4), True: (0, 4)},
    (16, 28): {False: (6, 0), True: (6, 0)},
    (20, 20): {False: (0, 0), True: (0, 0)},
    (33, 18): {False: (0, 6), True: (0, 7)},
    (18, 25): {False: (3, 0), True: (3, 0)},
}


def test_geometry_follows_diffusers_flip_then_crop():
    """The reported (top, left) is where diffusers' script (resize, flip, crop) would cut the same pixels."""
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (16, 26, 3), dtype=np.uint8))  # width 26, height 16
    resized = img.resize((13, 8), Image.Resampling.BILINEAR)  # shorter side 8, longer int(8 · 26 / 16) = 13
    for crop, u in (("center", (0.0, 0.0)), ("random", (0.0, 0.9))):
        for flip in (False, True):
            out, geom = transform_image_with_geometry(img, 8, crop, "bilinear", flip, u)
            assert geom.original_size == (16, 26)
            # centre: left = round(5 / 2) = 2; random u = 0.9: left = min(int(0.9 · 6), 5) = 5
            left = 2 if crop == "center" else 5
            assert geom.crop_top_left == (0, 13 - 8 - left if flip else left)
            view = resized.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else resized
            top, left_seen = geom.crop_top_left
            want = np.asarray(view.crop((left_seen, top, left_seen + 8, top + 8)), dtype=np.float32)
            assert torch.equal(out, torch.from_numpy(want).permute(2, 0, 1) / 255.0 * 2 - 1)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("sdxl-real")
    return root, make_world(root, family="sdxl")


def _image_sizes(dataset, indices):
    """(width, height) of each pair's winner and loser as stored (decoded independently of the transforms)."""
    import io

    pairs = dataset.encoded_pairs(indices)
    return [tuple(Image.open(io.BytesIO(b)).size for b in pair) for pair in pairs]


@pytest.mark.parametrize("cached", [False, True])
def test_winner_and_loser_rows_get_their_own_time_ids(world, tmp_path, cached):
    from inpo import layout
    from inpo.data import PairDataset
    from inpo.models import load_components
    from inpo.train.encode import BatchEncoder

    root, paths = world
    overrides = ["model.sdxl_micro_conditioning=real", "data.caption_dropout=0.5"]
    if cached:
        overrides.append("train.cache_embeddings=true")
    cfg = make_config(tmp_path, paths, family="sdxl", overrides=overrides)
    components = load_components(cfg.model)
    dataset = PairDataset(layout.pair_index(cfg), cfg.data, seed=0)
    indices = list(range(8))
    if cached:
        caches = cached_encoder(cfg, components)
        caches.encode(dataset, indices, "cpu")  # fill
        caches.flush()
        caches = cached_encoder(cfg, components)  # a later run: every latent, geometry and caption from disk
    else:
        caches = BatchEncoder(components, R)
    encoded = caches.encode(dataset, indices, "cpu")
    if cached:
        assert caches.embeddings.misses == 0
    time_ids = encoded.cond2.time_ids
    assert time_ids is not None and time_ids.shape == (2 * len(indices), 6)
    sizes = _image_sizes(dataset, indices)
    differ = 0
    for row, key in enumerate(encoded.keys):
        b = indices.index(key.pair_index)
        width, height = sizes[b][0 if key.side == "w" else 1]
        top, left = EXPECTED_CROP[(width, height)][key.flip]
        assert time_ids[row].tolist() == [height, width, top, left, R, R], (row, key)
        differ += key.side == "w" and not torch.equal(time_ids[row], time_ids[row + len(indices)])
    assert differ >= 4, "the fixture should give most pairs a winner and loser of different sizes"
    assert any(k.flip for k in encoded.keys) and any(not k.flip for k in encoded.keys)
    # the text part is the pair's caption on both sides
    b = len(indices)
    assert torch.equal(
        encoded.cond2.encoder_hidden_states[:b], encoded.cond2.encoder_hidden_states[b:]
    ) and torch.equal(encoded.cond2.text_embeds[:b], encoded.cond2.text_embeds[b:])
    assert torch.equal(encoded.cond.time_ids, time_ids[:b])


def test_constant_micro_conditioning_is_the_same_for_every_row(world, tmp_path):
    from inpo import layout
    from inpo.data import PairDataset
    from inpo.models import load_components
    from inpo.train.encode import BatchEncoder

    root, paths = world
    cfg = make_config(tmp_path, paths, family="sdxl")
    dataset = PairDataset(layout.pair_index(cfg), cfg.data, seed=0)
    encoded = BatchEncoder(load_components(cfg.model), R).encode(dataset, [0, 1, 2], "cpu")
    assert encoded.cond2.time_ids.tolist() == [[R, R, 0, 0, R, R]] * 6


def test_sdxl_real_micro_conditioning_trains_two_steps(world, tmp_path):
    """2 InPO steps with real micro-conditioning (the reference inverts with CFG 2, so the "" rows take each
    image's time_ids too): finite losses, every parameter moves; the UNet saw the sizes (its errors differ
    from a constant-conditioned run of the same pairs and draws)."""
    from inpo.models import load_components
    from inpo.train.loop import train

    root, paths = world
    common = ["method.inpo.inversion.model=reference", "method.inpo.inversion.guidance=2.0"]
    real = make_config(
        tmp_path, paths, family="sdxl", overrides=[*common, "model.sdxl_micro_conditioning=real"]
    )
    base = state(load_components(real.model).unet)
    result = train(run_spec(real, "inpo"))
    losses = read_losses(result.metrics_path)
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    after = state(result.policy)
    assert [k for k in base if torch.equal(base[k], after[k])] == []
    import json

    first_real = json.loads(result.metrics_path.read_text().splitlines()[0])
    constant = make_config(
        tmp_path / "constant", paths, family="sdxl", overrides=[*common, "train.max_steps=1"]
    )
    first_constant = json.loads(
        train(run_spec(constant, "inpo")).metrics_path.read_text().splitlines()[0]
    )
    assert first_real["err_ref_w"] != pytest.approx(first_constant["err_ref_w"], rel=1e-6)


def test_sampling_works_with_real_micro_conditioning(tmp_path):
    """Inference uses the SDXL pipeline's default geometry (full-size original, no crop)."""
    from inpo.config import DEFAULT_PARAMS as PARAMS
    from inpo.config import config_from_dict, read_yaml
    from inpo.models import load_components
    from inpo.sampling import sample_images
    from inpo.testing import write_tiny_sdxl

    model = write_tiny_sdxl(tmp_path / "sdxl", words=["a", "red", "cat"])
    cfg = config_from_dict(
        read_yaml(PARAMS),
        ["model.family=sdxl", f"model.pretrained={model}", "model.sdxl_micro_conditioning=real"],
    )
    components = load_components(cfg.model)
    images = sample_images(components, components.unet, ["a red cat", "a cat"], [0, 1], steps=2, guidance=2.0)
    assert images.shape[0] == 2 and images.shape[1] == 3 and torch.isfinite(images).all()
