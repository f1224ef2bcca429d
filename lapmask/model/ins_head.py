"""Instance head (``LapMaskInsHead``, spec 3): one head shared by the 6 levels; category + 3 kernel towers."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lapmask.config import HeadConfig
from lapmask.model.blocks import ConvBlock, coord_feat

KERNEL_BRANCHES = ("kernel_lap1", "kernel_lap2", "kernel_lap3")


def _tower(c_in: int, c: int, n: int) -> nn.Sequential:
    """Conv3x3 (no bias: NORM is GN) -> GroupNorm(32) -> SiLU -> ConvBlock(c, c, n); indices 0..3 as official."""
    conv = nn.Conv2d(c_in, c, 3, padding=1, bias=False)
    nn.init.normal_(conv.weight, std=0.01)
    return nn.Sequential(conv, nn.GroupNorm(32, c), nn.SiLU(), ConvBlock(c, c, n))


def _pred(c_in: int, c_out: int, bias: float = 0.0) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, 3, padding=1)
    nn.init.normal_(conv.weight, std=0.01)
    nn.init.constant_(conv.bias, bias)
    return conv


class LapMaskInsHead(nn.Module):
    """Category logits and per-cell dynamic kernels for the three Laplacian levels.

    Registration order (towers, then prediction convs) reproduces the official state_dict key order.
    """

    def __init__(self, h: HeadConfig) -> None:
        super().__init__()
        self.num_grids = tuple(h.num_grids)
        self.use_coord_conv = h.use_coord_conv
        c_in, ci = h.instance_in_channels, h.instance_channels
        k_in = c_in + 2 if h.use_coord_conv else c_in
        self.cate_tower = _tower(c_in, ci, h.num_instance_convs)
        for name in KERNEL_BRANCHES:
            setattr(self, f"{name}_tower", _tower(k_in, ci, h.num_instance_convs - 1))
        prior_bias = -math.log((1 - h.prior_prob) / h.prior_prob)
        self.cate_pred = _pred(ci, h.num_classes, prior_bias)
        for name in KERNEL_BRANCHES:
            setattr(self, f"{name}_pred", _pred(ci, 9 * h.num_kernels))

    def level_input(self, x: Tensor, grid: int) -> Tensor:
        """CoordConv at the level's resolution, then resize to S x S (spec 3.1).

        Args:
            x (Tensor[B, C, h, w]): split feature of the level.
        Returns:
            Tensor[B, C (+2 coordinate channels), S, S].
        """
        if self.use_coord_conv:
            x = torch.cat([x, coord_feat(x)], dim=1)
        # Resize WITH the coordinate channels: on the grid they are resized ramps, not linspace (spec 3.1, 9.10).
        return F.interpolate(x, size=(grid, grid), mode="bilinear", align_corners=False)

    def towers(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Category and kernel towers + predictions on level inputs (``level_input``), any batch.

        Returns:
            cate (Tensor[N, num_classes, S, S]) logits; kernels: 3 x Tensor[N, 9*NK, S, S] (lap1..lap3).
        """
        cate_in = x[:, :-2] if self.use_coord_conv else x
        kernels = [getattr(self, f"{n}_pred")(getattr(self, f"{n}_tower")(x)) for n in KERNEL_BRANCHES]
        cate = self.cate_pred(self.cate_tower(cate_in))
        return cate, kernels

    def forward_level(self, x: Tensor, grid: int) -> tuple[Tensor, list[Tensor]]:
        """One level (spec 3.1): CoordConv at the level's resolution, resize to S x S, towers, predictions.

        Args:
            x (Tensor[B, C, h, w]): split feature of the level.
        Returns:
            cate (Tensor[B, num_classes, S, S]) logits; kernels: 3 x Tensor[B, 9*NK, S, S] (lap1..lap3).
        """
        return self.towers(self.level_input(x, grid))

    def forward(self, feats: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Args: feats: 6 split features. Returns: cate (6 x [B, K, S, S]), kernel (6 x [B, 3, 9*NK, S, S]).

        Levels with the same grid size run through the towers as one batch: every layer (conv, GroupNorm per
        sample, SiLU) treats each sample on its own, so this is the per-level computation with fewer, larger
        calls. The official grids all differ (nothing changes there); a preset with repeated grid sizes (lite)
        gets one tower pass per distinct size instead of one per level, which on a CPU is what the head costs.
        """
        cates: list[Tensor | None] = [None] * len(feats)
        kernels: list[Tensor | None] = [None] * len(feats)
        for grid in dict.fromkeys(self.num_grids):  # distinct sizes, first-seen order
            levels = [i for i, s in enumerate(self.num_grids) if s == grid]
            inputs = [self.level_input(feats[i], grid) for i in levels]
            c, ks = self.towers(torch.cat(inputs) if len(inputs) > 1 else inputs[0])
            k = torch.stack(ks, dim=1)  # [N, 3, 9*NK, S, S]
            batch = [t.shape[0] for t in inputs]
            for i, ci, ki in zip(levels, c.split(batch), k.split(batch)):
                cates[i], kernels[i] = ci, ki
        return cates, kernels
