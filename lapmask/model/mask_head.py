"""Mask branch (``LapMaskHead``, spec 4.1-4.2): pyramid fusion, Laplacian decomposition, per-level refinement.

Outputs the three mask features F1 (stride 4), F2 (stride 8), F3 (stride 16) and their raw 27-channel
offset/modulation maps O1..O3, which the dynamic deformable filters consume (spec 4.3).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lapmask.config import HeadConfig
from lapmask.model.blocks import ConvBlock, conv_gn_silu, coord_feat


def _bilinear(x: Tensor, scale: float) -> Tensor:
    # The official code resamples with F.interpolate(scale_factor=...) everywhere in the mask branch; we keep
    # the same call (not the mathematically equal 2x2 average pool) so results agree to the last bit.
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


def _fusion_branch(level: int, c_in: int, c: int) -> nn.Sequential:
    """Branch i: conv0 (+coord channels on p5), then (upsample, conv) pairs up to stride 4 (spec 4.1 table)."""
    seq = nn.Sequential()
    for j in range(max(level, 1)):
        cin = (c_in + 2 if level == 3 else c_in) if j == 0 else c
        seq.add_module(f"conv{j}", conv_gn_silu(cin, c))
        if level > 0:
            seq.add_module(f"upsample{j}", nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
    return seq


class LapMaskHead(nn.Module):
    """Registration order reproduces the official key order (Appendix A)."""

    def __init__(self, h: HeadConfig) -> None:
        super().__init__()
        nm, c = h.num_masks, h.mask_channels
        self.convs_all_levels = nn.ModuleList(_fusion_branch(i, h.mask_in_channels, c) for i in range(4))
        self.conv_pred = conv_gn_silu(c, 4 * nm, k=1)
        for k in (1, 2, 3):
            conv = nn.Conv2d(nm, 27, 3, padding=1)
            nn.init.zeros_(conv.weight)  # zero-initialised: modulation 0.5, offsets 0 at start (spec 9.8)
            nn.init.zeros_(conv.bias)
            setattr(self, f"offset_mask_conv_lap{k}", conv)
        self.btneck_lap2 = ConvBlock(4 * nm, 4 * nm, 1)  # 2 bottlenecks
        self.btneck_lap3 = ConvBlock(4 * nm, 4 * nm, 3)  # 4 bottlenecks
        for k in (1, 2, 3):
            setattr(self, f"mask_feat_pred_lap{k}", conv_gn_silu(4 * nm, nm, groups=16))  # GN(16): spec 4.2

    def forward(self, feats: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Args: feats: [p2, p3, p4, p5] (Tensor[B, C, H/4..H/32, ...]).

        Returns:
            mask_feats: [F1 (Tensor[B, NM, H/4, W/4]), F2 (.. H/8 ..), F3 (.. H/16 ..)];
            offsets: [O1, O2, O3] raw Tensor[B, 27, ...] at the same sizes.
        """
        fused = self.convs_all_levels[0](feats[0])
        for i in range(1, 4):
            x = feats[i]
            if i == 3:
                x = torch.cat([x, coord_feat(x)], dim=1)
            fused = fused + self.convs_all_levels[i](x)
        g0 = self.conv_pred(fused)
        g1 = _bilinear(g0, 0.5)
        g2 = _bilinear(g1, 0.5)
        l1 = g0 - _bilinear(g1, 2.0)
        l2 = g1 - _bilinear(g2, 2.0)
        f1 = self.mask_feat_pred_lap1(l1)
        f2 = self.mask_feat_pred_lap2(self.btneck_lap2(l2))
        f3 = self.mask_feat_pred_lap3(self.btneck_lap3(g2))  # level 3 is the low-pass G2 itself
        offsets = [self.offset_mask_conv_lap1(f1), self.offset_mask_conv_lap2(f2), self.offset_mask_conv_lap3(f3)]
        return [f1, f2, f3], offsets
