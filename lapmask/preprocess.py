"""Test-time image loading and pre-processing (spec 1.1), numpy + PIL only (deploy predictors use it too).

Resize as detectron2's ``ResizeShortestEdge`` on the uint8 image with PIL bilinear (what the official test
mapper does), then pad bottom/right to a multiple of 32. ``resize=False`` is the native-size mode (padding only).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


class ImageError(ValueError):
    """An input image that cannot be used; the message says why and what to do."""


def load_image_bgr(path: str | Path) -> np.ndarray:
    """Read an image file as BGR uint8 [H, W, 3] (EXIF orientation applied, like detectron2's ``read_image``)."""
    p = Path(path)
    if not p.is_file():
        raise ImageError(f"image file not found: {p}")
    try:
        with Image.open(p) as im:
            im = ImageOps.exif_transpose(im)
            rgb = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ImageError(f"cannot decode image {p}: {e}; is it a valid PNG/JPEG?") from e
    return np.ascontiguousarray(rgb[:, :, ::-1])


def check_image(img: np.ndarray) -> None:
    """Raise ImageError unless ``img`` is a non-empty uint8 BGR array [H, W, 3]."""
    if not isinstance(img, np.ndarray):
        raise ImageError(f"expected a numpy array [H, W, 3] uint8 (BGR), got {type(img).__name__}")
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        raise ImageError(f"grayscale image {img.shape}: convert to 3-channel BGR first (e.g. np.repeat(..., 3, 2))")
    if img.ndim != 3 or img.shape[2] != 3:
        raise ImageError(f"expected [H, W, 3] BGR, got shape {img.shape} (4-channel? drop alpha: img[:, :, :3])")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ImageError(f"empty image of shape {img.shape}")
    if img.dtype != np.uint8:
        raise ImageError(f"expected dtype uint8 (0-255), got {img.dtype}; convert with np.clip(x, 0, 255).astype(np.uint8)")


def resized_hw(h: int, w: int, short: int, max_size: int) -> tuple[int, int]:
    """detectron2 ``ResizeShortestEdge.get_output_shape``: shortest edge to ``short``, long edge capped."""
    scale = short * 1.0 / min(h, w)
    newh, neww = (short * 1.0, scale * w) if h < w else (scale * h, short * 1.0)
    if max(newh, neww) > max_size:
        s = max_size * 1.0 / max(newh, neww)
        newh, neww = newh * s, neww * s
    return int(newh + 0.5), int(neww + 0.5)


def resize_bgr(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """PIL bilinear resize of a uint8 [H, W, 3] image to ``hw`` (detectron2 ``ResizeTransform.apply_image``)."""
    if (img.shape[0], img.shape[1]) == tuple(hw):
        return img
    return np.asarray(Image.fromarray(img).resize((hw[1], hw[0]), Image.BILINEAR))


def pad_to(img: np.ndarray, divisibility: int = 32) -> np.ndarray:
    """Pad [H, W, 3] bottom/right with zeros to multiples of ``divisibility`` (the graph re-zeroes padding)."""
    h, w = img.shape[:2]
    H, W = -(-h // divisibility) * divisibility, -(-w // divisibility) * divisibility
    out = np.zeros((H, W, 3), dtype=img.dtype)
    out[:h, :w] = img
    return out


def prepare_image(img: np.ndarray, min_size: int, max_size: int, resize: bool = True,
                  divisibility: int = 32) -> tuple[np.ndarray, tuple[int, int]]:
    """Resize (unless ``resize`` is False) and pad for the deploy graph.

    Returns:
        image (np.ndarray[1, 3, H, W] uint8, BGR, padded), image_hw (h, w) of the resized image before padding.
    """
    check_image(img)
    if resize:
        img = resize_bgr(img, resized_hw(img.shape[0], img.shape[1], min_size, max_size))
    hw = (int(img.shape[0]), int(img.shape[1]))
    return np.ascontiguousarray(pad_to(img, divisibility).transpose(2, 0, 1)[None]), hw
