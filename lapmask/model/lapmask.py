"""The LapMask meta-architecture: backbone + FPN, shared instance head, Laplacian mask branch (spec 1).

``forward`` takes the normalised, padded batch and returns tensors only; losses (``lapmask.model.loss``) and
post-processing (``lapmask.inference``) are separate functions.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lapmask.config import LapMaskConfig
from lapmask.model.backbone import build_backbone
from lapmask.model.ins_head import LapMaskInsHead
from lapmask.model.mask_head import LapMaskHead

INSTANCE_IN_FEATURES = ("p2", "p2", "p3", "p4", "p5", "p6")
MASK_IN_FEATURES = ("p2", "p3", "p4", "p5")


def split_feats(feats: list[Tensor]) -> list[Tensor]:
    """Resample the 6 instance inputs (spec 1.2): level 1 = p2 x0.5, level 5 = p6 resized to p5's exact size.

    Args:
        feats: [p2, p2, p3, p4, p5, p6] (Tensor[B, C, h_l, w_l]).
    Returns:
        6 tensors: p2 (H/4), p2 x0.5 (H/8), p3, p4, p5, p6 -> p5 size.
    """
    return [
        feats[0],
        F.interpolate(feats[1], scale_factor=0.5, mode="bilinear", align_corners=False),
        feats[2],
        feats[3],
        feats[4],
        F.interpolate(feats[5], size=feats[4].shape[-2:], mode="bilinear", align_corners=False),
    ]


class LapMask(nn.Module):
    """LapMask model. Submodule names (``backbone``, ``ins_head``, ``mask_head``) equal the official ones."""

    def __init__(self, cfg: LapMaskConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg)
        self.ins_head = LapMaskInsHead(cfg.head)
        self.mask_head = LapMaskHead(cfg.head)
        # Non-persistent like detectron2's: they are config, not weights.
        self.register_buffer("pixel_mean", torch.tensor(cfg.input.pixel_mean).view(3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.input.pixel_std).view(3, 1, 1), persistent=False)

    @property
    def size_divisibility(self) -> int:
        return self.cfg.input.size_divisibility

    def forward(self, images: Tensor) -> dict[str, list[Tensor]]:
        """Run the network on a normalised, zero-padded batch.

        Args:
            images (Tensor[B, 3, H, W]): H, W multiples of 32 (see ``lapmask.model.preprocess``).
        Returns:
            dict with ``cate`` (6 x Tensor[B, num_classes, S, S] logits), ``kernel`` (6 x Tensor[B, 3, 9*NK, S, S]),
            ``mask_feats`` ([F1 (H/4), F2 (H/8), F3 (H/16)] x Tensor[B, NM, ., .]), ``offsets`` (3 x Tensor[B, 27, ., .]).
        """
        d = self.size_divisibility
        if images.dim() != 4 or images.shape[1] != 3 or images.shape[-1] % d or images.shape[-2] % d:
            raise ValueError(f"expected a normalised batch [B, 3, H, W] with H, W multiples of {d}, "
                             f"got {tuple(images.shape)}; use lapmask.model.preprocess.normalize_and_pad")
        feats = self.backbone(images)
        cate, kernel = self.ins_head(split_feats([feats[f] for f in INSTANCE_IN_FEATURES]))
        mask_feats, offsets = self.mask_head([feats[f] for f in MASK_IN_FEATURES])
        return {"cate": cate, "kernel": kernel, "mask_feats": mask_feats, "offsets": offsets}


def build_model(cfg: LapMaskConfig) -> LapMask:
    """Build a LapMask model for a config (weights as the official initialisation)."""
    return LapMask(cfg)
