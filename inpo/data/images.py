"""Image cells of Pick-a-Pic-shaped data: raw bytes or ``{"bytes": ..., "path": ...}`` structs.

Pick-a-Pic v2's parquet shards store ``jpg_0``/``jpg_1`` as plain binary; a dataset written by
``datasets`` with an ``Image`` feature stores a struct. Both come out of :func:`image_bytes` as bytes.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

from PIL import Image, ImageFile, UnidentifiedImageError


class CorruptImageError(ValueError):
    """The bytes of an image are missing, truncated or not a decodable image."""


def image_bytes(cell: Any) -> bytes | None:
    """The encoded bytes of one image cell (bytes, bytearray, or a struct with ``bytes``); None if absent."""
    if cell is None:
        return None
    if isinstance(cell, bytes | bytearray | memoryview):
        return bytes(cell)
    if isinstance(cell, dict):
        return image_bytes(cell.get("bytes"))
    raise TypeError(f"expected image bytes or a {{'bytes': ...}} struct, got {type(cell).__name__}")


def decode_rgb(data: bytes | None) -> Image.Image:
    """Fully decode ``data`` (JPEG, PNG, ...) to an RGB image, or raise :class:`CorruptImageError`.

    The whole image is decoded (``load()``), so a truncated file is caught here, not at training time,
    even where another library switched on PIL's ``LOAD_TRUNCATED_IMAGES``.
    """
    if not data:
        raise CorruptImageError("no image bytes")
    allow_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.width < 1 or img.height < 1:
                raise CorruptImageError(f"image of size {img.width}x{img.height}")
            return img.convert("RGB")
    except CorruptImageError:
        raise
    except UnidentifiedImageError as err:  # its message holds a memory address: keep summaries reproducible
        raise CorruptImageError("not a recognised image format") from err
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
        raise CorruptImageError(f"{type(err).__name__}: {err}") from err
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = allow_truncated


def image_hash(data: bytes) -> str:
    """A 128-bit BLAKE2b hex digest of the encoded bytes (identical files ⇔ identical hashes)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()
