"""The oracle reward and the guard metrics on hand-made images."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from inpo.sampling import to_pil
from inpo.toyworld.metrics import classify, diversity, prompt_following
from inpo.toyworld.oracle import OracleScorer, oracle_terms
from inpo.toyworld.prompts import all_prompts
from inpo.toyworld.world import COLOURS, SHAPES, Scene, palette, parse_prompt, random_scenes, render


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return random_scenes(all_prompts(), 16, torch.Generator().manual_seed(0))


def _flat(colours: list[str]) -> torch.Tensor:
    return palette(colours).view(-1, 3, 1, 1).expand(-1, 3, 16, 16).clone()


def test_rendered_prompt_scores_exactly_one(scenes):
    scores = OracleScorer().score(render(scenes, 16), all_prompts())
    assert scores.dtype == torch.float32 and scores.shape == (120,)
    assert torch.allclose(scores, torch.ones(120))


@pytest.mark.parametrize("field", ["colour", "shape", "background"])
def test_correct_image_beats_one_wrong_attribute(scenes, field):
    prompts = all_prompts()
    wrong = []
    for s in scenes:
        if field == "shape":
            wrong.append(dataclasses.replace(s, shape=SHAPES[(SHAPES.index(s.shape) + 1) % len(SHAPES)]))
        else:
            others = [c for c in COLOURS if c not in (s.colour, s.background)]
            wrong.append(dataclasses.replace(s, **{field: others[0]}))
    scores = OracleScorer().score(render(wrong, 16), prompts)
    assert bool((scores < 0.8).all()), f"max score with a wrong {field}: {float(scores.max()):.3f}"


def test_cheap_tricks_score_near_zero():
    prompts = all_prompts()
    parsed = [parse_prompt(p) for p in prompts]
    oracle = OracleScorer()
    paint_all = oracle.score(_flat([c for c, _, _ in parsed]), prompts)  # everything prompt-coloured
    empty = oracle.score(_flat([b for _, _, b in parsed]), prompts)  # just the background
    grey = oracle.score(torch.full((120, 3, 16, 16), 0.5), prompts)  # the average image
    half = _flat([b for _, _, b in parsed])
    top = palette([c for c, _, _ in parsed]).view(-1, 3, 1, 1)
    half[:, :, :8] = top  # top half in the shape colour, bottom half background
    halves = oracle.score(half, prompts)
    assert float(paint_all.max()) < 0.05 and float(empty.max()) < 1e-6 and float(grey.max()) < 0.05
    assert float(halves.max()) < 0.5


def test_wrong_shape_score_is_hand_derived():
    # White circle r=4 asked to be a white square on black. Best placement: the square r=4 at the
    # same centre (it holds the 52 circle pixels). colour = 52/64 (the 12 corners are black, whose
    # closeness to white is exp(-1.528²/(2·0.25²)) ≈ 8e-9), background = 1 (everything outside the
    # square is black), shape IoU = 52/64 → score = (52/64)² = 0.66015625.
    img = render([Scene("circle", "white", "black", 8, 8, 4)], 16)
    terms = oracle_terms(img, ["a white square on a black background"])
    assert math.isclose(float(terms["colour"][0]), 52 / 64, abs_tol=1e-6)
    assert math.isclose(float(terms["background"][0]), 1.0, abs_tol=1e-6)
    assert math.isclose(float(terms["shape_iou"][0]), 52 / 64, abs_tol=1e-6)
    assert math.isclose(float(terms["score"][0]), 0.66015625, abs_tol=1e-6)


def test_small_noise_costs_less_than_a_wrong_shape(scenes):
    x = render(scenes, 16)
    noisy = (x + 0.03 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert float(OracleScorer().score(noisy, all_prompts()).mean()) > 0.9


def test_scores_pil_images_like_tensors(scenes):
    x = render(scenes[:10], 16)
    oracle = OracleScorer()
    assert torch.allclose(
        oracle.score(to_pil(x * 2 - 1), all_prompts()[:10]), oracle.score(x, all_prompts()[:10])
    )
    assert oracle.name == "oracle" and oracle.info()["name"] == "oracle"


def test_oracle_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="2 images but 1 prompts"):
        OracleScorer().score(torch.zeros(2, 3, 16, 16), ["a red circle on a blue background"])


def test_classifier_is_exact_on_rendered_scenes(scenes):
    result = prompt_following(render(scenes, 16), all_prompts())
    assert result == {
        "accuracy": 1.0,
        "colour_accuracy": 1.0,
        "shape_accuracy": 1.0,
        "background_accuracy": 1.0,
    }


def test_prompt_following_counts_each_attribute():
    prompt = "a red circle on a blue background"
    images = render(
        [
            Scene("circle", "red", "blue", 8, 8, 5),  # right
            Scene("square", "red", "blue", 8, 8, 5),  # wrong shape
            Scene("circle", "green", "blue", 8, 8, 5),  # wrong colour
            Scene("circle", "red", "white", 8, 8, 5),  # wrong background
        ],
        16,
    )
    blank = _flat(["blue"])  # no shape at all
    x = torch.cat([images, blank])
    assert classify(blank)[0] == (None, None, "blue")
    # accuracy 1/5; colour right in 3 (right, wrong shape, wrong background); shape right in 3; background in 4
    assert prompt_following(x, [prompt] * 5) == {
        "accuracy": 1 / 5,
        "colour_accuracy": 3 / 5,
        "shape_accuracy": 3 / 5,
        "background_accuracy": 4 / 5,
    }


def test_diversity_is_hand_derived():
    black, white = _flat(["black"]), _flat(["white"])
    # RMS distance black ↔ white = (245 - 20) / 255 on every channel = 0.882353.
    # Images A, A, B of one prompt: ordered pairs 3·2 = 6, four of them at distance D → 4D/6 = 2D/3.
    d = 225 / 255
    x = torch.cat([black, black, white, white])
    prompts = ["p"] * 3 + ["q"]  # q has one image: it does not count
    assert math.isclose(diversity(x, prompts), 2 * d / 3, rel_tol=1e-5)
    assert diversity(torch.cat([black, black]), ["p", "p"]) == 0.0
    with pytest.raises(ValueError, match="at least two images"):
        diversity(black, ["p"])


def test_the_guard_oracle_agrees_on_exact_scenes_and_is_stricter_on_near_misses(scenes):
    """oracle_strict (online rounds' held-out guard): σ 0.15 instead of 0.25. An exact render scores 1
    under both; a colour error of about 0.1 on every pixel lowers both, the guard more."""
    from inpo.toyworld.oracle import StrictOracleScorer

    x = render(scenes, 16)
    strict, loose = StrictOracleScorer(), OracleScorer()
    assert strict.name == "oracle_strict" and strict.info()["sigma"] == 0.15
    torch.testing.assert_close(strict.score(x, all_prompts()), torch.ones(len(scenes)))
    shifted = (x + 0.1 / 3**0.5).clamp(0, 1)  # ≈0.1 away from every palette colour (less where clamped)
    assert bool((strict.score(shifted, all_prompts()) < loose.score(shifted, all_prompts())).all())
