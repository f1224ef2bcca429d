"""Paste stride-4 mask probabilities back to the original image (spec 6 steps 10-11), in torch."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def paste_masks(probs: Tensor, image_hw: tuple[int, int], ori_hw: tuple[int, int], mask_thr: float) -> Tensor:
    """Upsample by ratio = ceil(h / (H_pad/4)) (4 except for degenerate tiny inputs -- official rule, applied to
    both axes), crop to the resized image, resize to the original size, threshold.

    Args:
        probs (Tensor[N, H/4, W/4]); image_hw: resized (unpadded) size; ori_hw: original size.
    Returns:
        Tensor[N, ori_h, ori_w] bool.
    """
    n, fh, fw = probs.shape
    if n == 0:
        return torch.zeros((0, *ori_hw), dtype=torch.bool, device=probs.device)
    h, w = image_hw
    ratio = math.ceil(h / fh)
    up = F.interpolate(probs.unsqueeze(0), size=(fh * ratio, fw * ratio), mode="bilinear", align_corners=False)
    up = up[:, :, :h, :w]
    return F.interpolate(up, size=tuple(ori_hw), mode="bilinear", align_corners=False)[0] > mask_thr


def boxes_from_masks(masks: Tensor) -> Tensor:
    """[x_min, y_min, x_max, y_max] of set pixels as inclusive indices; zeros for empty masks (spec 6 step 11).

    Args:
        masks (Tensor[N, H, W] bool). Returns: Tensor[N, 4] float32.
    """
    n = masks.shape[0]
    if n == 0:
        return torch.zeros((0, 4), device=masks.device)
    rows = masks.any(2)  # [N, H]
    cols = masks.any(1)  # [N, W]
    h, w = masks.shape[1:]
    ar_h = torch.arange(h, device=masks.device)
    ar_w = torch.arange(w, device=masks.device)
    ymin = torch.where(rows, ar_h, h).min(1).values
    ymax = torch.where(rows, ar_h, -1).max(1).values
    xmin = torch.where(cols, ar_w, w).min(1).values
    xmax = torch.where(cols, ar_w, -1).max(1).values
    boxes = torch.stack([xmin, ymin, xmax, ymax], 1).float()
    return torch.where(rows.any(1, keepdim=True), boxes, torch.zeros_like(boxes))
