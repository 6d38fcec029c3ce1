"""The toy world: prompts, the held-out split, geometry and rendering."""

from __future__ import annotations

import pytest
import torch

from inpo.sampling import to_pil
from inpo.toyworld.prompts import all_prompts, heldout_prompts, training_prompts
from inpo.toyworld.world import (
    COLOURS,
    SHAPES,
    Scene,
    images_to_tensor,
    parse_prompt,
    prompt_for,
    random_scenes,
    render,
    shape_masks,
    size_range,
)


def test_parse_prompt_round_trips_every_prompt():
    for prompt in all_prompts():
        assert prompt_for(*parse_prompt(prompt)) == prompt
    assert parse_prompt("A Red circle on a BLUE background ") == ("red", "circle", "blue")


@pytest.mark.parametrize(
    "prompt, message",
    [
        ("a purple circle on a blue background", "unknown word 'purple'"),
        ("a red hexagon on a blue background", "unknown word 'hexagon'"),
        ("a red circle on a red background", "same colour"),
        ("red circle, blue background", "expected 'a <colour> <shape>"),
    ],
)
def test_parse_prompt_rejects_bad_prompts(prompt, message):
    with pytest.raises(ValueError, match=message):
        parse_prompt(prompt)


def test_heldout_split_is_disjoint_and_compositional():
    everything, heldout, train = all_prompts(), heldout_prompts(), training_prompts()
    # 6 colours × 4 shapes × 5 other background colours = 120; the rule keeps 1 in 6 out → 12 (10%).
    assert len(everything) == 120 and len(heldout) == 12 and len(train) == 108
    assert set(heldout).isdisjoint(train) and set(heldout) | set(train) == set(everything)
    seen = [parse_prompt(p) for p in train]
    for colour, shape, background in map(parse_prompt, heldout):
        # every pair of attributes of a held-out prompt occurs in some training prompt
        assert any(c == colour and s == shape for c, s, _ in seen)
        assert any(s == shape and b == background for _, s, b in seen)
        assert any(c == colour and b == background for c, _, b in seen)


def test_heldout_prompts_accepts_the_config_or_its_toy_section():
    from inpo.config import DEFAULT_PARAMS, load_config

    cfg = load_config(DEFAULT_PARAMS, [])
    assert heldout_prompts(cfg) == heldout_prompts(cfg.toy) == heldout_prompts()
    assert training_prompts(cfg) == training_prompts()


def _count(shape: str, r: int) -> int:
    return int(shape_masks(shape, torch.tensor([8]), torch.tensor([8]), torch.tensor([r]), 16).sum())


def test_shape_pixel_counts_are_hand_derived():
    # square, half-size 4: pixel centres with |dx|, |dy| < 4 → 8 × 8 = 64
    assert _count("square", 4) == 64
    # circle r = 4: rows at |dy| = 0.5, 1.5, 2.5, 3.5 hold 8, 8, 6, 4 centres with dx² + dy² <= 16 → 2·26 = 52
    assert _count("circle", 4) == 52
    # cross r = 4: bars 8 long and 2 thick (|d| < 1.2 keeps centres ±0.5) → 16 + 16 - 4 overlap = 28
    assert _count("cross", 4) == 28
    # triangle r = 4: 8 rows, half-width 4·(row + 1)/8 at the row's lower edge → widths 2,2,4,4,6,6,8,8 = 40
    assert _count("triangle", 4) == 40


def test_render_paints_shape_and_background_colours():
    scene = Scene("square", "red", "blue", cx=8, cy=8, r=4)
    img = render([scene], 16)[0]
    red, blue = (torch.tensor(COLOURS[c]) / 255.0 for c in ("red", "blue"))
    assert torch.equal(img[:, 8, 8], red) and torch.equal(img[:, 4, 4], red)  # inside: rows/cols 4..11
    assert torch.equal(img[:, 3, 8], blue) and torch.equal(img[:, 12, 12], blue)
    assert int((img == red.view(3, 1, 1)).all(0).sum()) == 64


def test_random_scenes_keep_a_background_ring_and_are_seeded():
    prompts = all_prompts()
    scenes = random_scenes(prompts, 16, torch.Generator().manual_seed(3))
    assert scenes == random_scenes(prompts, 16, torch.Generator().manual_seed(3))
    assert {s.r for s in scenes} == set(size_range(16)) == {4, 5, 6}
    images = render(scenes, 16)
    for img, scene in zip(images, scenes):
        bg = torch.tensor(COLOURS[scene.background]).view(3, 1) / 255.0
        ring = torch.cat([img[:, 0], img[:, -1], img[:, :, 0], img[:, :, -1]], dim=1)
        assert torch.equal(ring, bg.expand_as(ring))
    assert {s.shape for s in scenes} == set(SHAPES)


def test_pixels_survive_the_uint8_round_trip():
    x = render(random_scenes(all_prompts()[:8], 16, torch.Generator().manual_seed(0)), 16)
    back = images_to_tensor(to_pil(x * 2 - 1))  # model space [-1, 1] → PIL → [0, 1]
    assert torch.equal(back, x)
