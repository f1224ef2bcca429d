"""Flatten per-level head outputs of one image into cell-major tables (official ``LapMask.inference``)."""
from __future__ import annotations

import torch
from torch import Tensor

from lapmask.ops.point_nms import point_nms


def flat_scores(cate: list[Tensor], b: int) -> Tensor:
    """Sigmoid + point NMS per level, flattened (spec 6 step 1).

    Args:
        cate: 6 x Tensor[B, K, S, S] logits.
    Returns:
        Tensor[cells, K]: cells row-major (y*S + x) per level, levels concatenated in order.
    """
    out = [point_nms(c[b:b + 1].sigmoid())[0].permute(1, 2, 0).reshape(-1, c.shape[1]) for c in cate]
    return torch.cat(out, dim=0)


def flat_kernels(kernel: list[Tensor], b: int) -> Tensor:
    """Args: kernel: 6 x Tensor[B, 3, E, S, S]. Returns: Tensor[cells, 3, E] in the same cell order."""
    out = [k[b].permute(2, 3, 0, 1).reshape(-1, k.shape[1], k.shape[2]) for k in kernel]
    return torch.cat(out, dim=0)


def cell_strides(num_grids: tuple[int, ...], strides: tuple[int, ...], device: torch.device | None = None) -> Tensor:
    """Per-cell nominal stride used as the minimum-area threshold (spec 6 step 4). Returns Tensor[cells] float32."""
    return torch.cat([torch.full((s * s,), float(st), device=device) for s, st in zip(num_grids, strides)])
