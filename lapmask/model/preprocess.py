"""Normalisation and batch padding (spec 1.1): what detectron2's ``preprocess_image`` does."""
from __future__ import annotations

import torch
from torch import Tensor


def normalize_and_pad(images: list[Tensor], pixel_mean: Tensor, pixel_std: Tensor, divisibility: int = 32,
                      canvas_hw: tuple[int, int] | None = None) -> tuple[Tensor, list[tuple[int, int]]]:
    """Normalise each image, then pad bottom/right with 0 to a common canvas (multiple of ``divisibility``).

    Padding after normalisation with 0 equals padding the raw image with the pixel mean (official behaviour).

    Args:
        images: B x Tensor[3, h_i, w_i] (uint8 or float, BGR 0-255).
        pixel_mean, pixel_std (Tensor[3, 1, 1]).
        canvas_hw: force a canvas (must cover every image); default: max size rounded up to ``divisibility``.
    Returns:
        batch (Tensor[B, 3, H, W] float32), image_sizes [(h_i, w_i)].
    """
    if not images:
        raise ValueError("normalize_and_pad needs at least one image")
    for i, im in enumerate(images):
        if im.dim() != 3 or im.shape[0] != 3:
            raise ValueError(f"image {i} has shape {tuple(im.shape)}; expected [3, H, W] (BGR)")
        if im.shape[1] == 0 or im.shape[2] == 0:
            raise ValueError(f"image {i} is empty ({tuple(im.shape)})")
    sizes = [(int(im.shape[1]), int(im.shape[2])) for im in images]
    if canvas_hw is None:
        H = -(-max(h for h, _ in sizes) // divisibility) * divisibility
        W = -(-max(w for _, w in sizes) // divisibility) * divisibility
    else:
        H, W = canvas_hw
        if H % divisibility or W % divisibility or any(h > H or w > W for h, w in sizes):
            raise ValueError(f"canvas {canvas_hw} must be a multiple of {divisibility} covering every image")
    batch = images[0].new_zeros((len(images), 3, H, W), dtype=torch.float32, device=pixel_mean.device)
    for i, im in enumerate(images):
        h, w = sizes[i]
        batch[i, :, :h, :w] = (im.to(pixel_mean.device, torch.float32) - pixel_mean) / pixel_std
    return batch, sizes
