"""PNG figures of the toy world: base samples per prompt, and preference pairs with the oracle's choice."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

LABEL_WIDTH = 250
BACKDROP = (255, 255, 255)
INK = (0, 0, 0)


def _upscale(img: Image.Image, scale: int) -> Image.Image:
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)


def sample_grid(
    rows: Sequence[tuple[str, Sequence[Image.Image]]], scale: int = 4, pad: int = 2
) -> Image.Image:
    """One row per prompt: the prompt's text, then its samples (one per seed), upscaled ``scale``×."""
    cols = max(len(images) for _, images in rows)
    side = rows[0][1][0].width * scale
    grid = Image.new("RGB", (LABEL_WIDTH + cols * (side + pad), len(rows) * (side + pad) + pad), BACKDROP)
    draw = ImageDraw.Draw(grid)
    for r, (prompt, images) in enumerate(rows):
        y = pad + r * (side + pad)
        draw.text((4, y + side // 2 - 5), prompt, fill=INK)
        for c, img in enumerate(images):
            grid.paste(_upscale(img, scale), (LABEL_WIDTH + c * (side + pad), y))
    return grid


def pair_grid(
    rows: Sequence[tuple[str, Image.Image, Image.Image, float, float, float]], scale: int = 4, border: int = 3
) -> Image.Image:
    """Rows of (caption, image 0, image 1, label_0, oracle_0, oracle_1): the winner framed green, the
    loser red, both grey on a tie; each image's oracle score beside it."""
    side = rows[0][1].width * scale
    cell = side + 2 * border
    width = LABEL_WIDTH + 2 * (cell + 60)
    grid = Image.new("RGB", (width, len(rows) * (cell + 4) + 4), BACKDROP)
    draw = ImageDraw.Draw(grid)
    for r, (caption, img0, img1, label_0, score_0, score_1) in enumerate(rows):
        y = 4 + r * (cell + 4)
        draw.text((4, y + cell // 2 - 5), caption, fill=INK)
        for side_index, (img, label, score) in enumerate(
            ((img0, label_0, score_0), (img1, 1 - label_0, score_1))
        ):
            x = LABEL_WIDTH + side_index * (cell + 60)
            frame = (128, 128, 128) if label == 0.5 else (0, 170, 0) if label == 1 else (200, 0, 0)
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=frame)
            grid.paste(_upscale(img, scale), (x + border, y + border))
            draw.text((x + cell + 4, y + cell // 2 - 5), f"{score:.2f}", fill=INK)
    return grid
