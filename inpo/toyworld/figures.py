"""PNG figures of the toy world: base samples per prompt, and preference pairs with the oracle's choice."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw

if TYPE_CHECKING:
    from ..config import Config

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


def write_pair_grid(pairs_dir: str | Path, path: str | Path, rows: int = 16) -> Path:
    """The first ``rows`` decodable pairs of the shard: winner framed green, loser red, tie grey."""
    import io

    import pyarrow.parquet as pq

    from ..io import write_png_atomic
    from .pairs import SHARD_NAME

    table = pq.read_table(Path(pairs_dir) / SHARD_NAME).to_pylist()
    shown = []
    for row in table:
        try:
            img0, img1 = (Image.open(io.BytesIO(row[k])).convert("RGB") for k in ("jpg_0", "jpg_1"))
        except OSError:
            continue  # a planted corrupt row
        shown.append((row["caption"], img0, img1, row["label_0"], row["oracle_0"], row["oracle_1"]))
        if len(shown) == rows:
            break
    return write_png_atomic(path, pair_grid(shown))


def write_sample_grid(cfg: Config, base_dir: str | Path, path: str | Path, seeds: int = 8) -> Path:
    """Held-out prompts × ``seeds`` DDIM samples of the base (``sample.steps``, ``sample.guidance``)."""
    from ..io import write_png_atomic
    from ..sampling import to_pil
    from .model import load_model
    from .prompts import heldout_prompts
    from .sampling import sample_toy

    model = load_model(base_dir)
    prompts = heldout_prompts(cfg)
    images = to_pil(
        sample_toy(
            model,
            [p for p in prompts for _ in range(seeds)],
            list(range(seeds)) * len(prompts),
            cfg.sample.steps,
            cfg.sample.guidance,
        )
    )
    rows = [(p, images[i * seeds : (i + 1) * seeds]) for i, p in enumerate(prompts)]
    return write_png_atomic(path, sample_grid(rows))
