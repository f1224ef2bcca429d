"""Shared test utilities: engineered model weights that make inference meaningful."""
from __future__ import annotations

import torch

from lapmask.config import LapMaskConfig, get_preset
from lapmask.model.lapmask import LapMask, build_model


def engineered_model(cate_bias: float = -2.0, seed: int = 0, cfg: LapMaskConfig | None = None) -> LapMask:
    """lite_R18 with weights that give a few hundred candidates, non-trivial masks and real Matrix NMS decays.

    The official init hides bugs (zero offset convs, tiny kernels): offsets and kernels are randomised so the
    deformable sampling moves by O(1) pixels and masks vary per instance; ``cate_bias`` sets how many cells pass
    the 0.1 score threshold (class 0 and 1 get the bias, the rest are suppressed so candidates stay countable).
    """
    torch.manual_seed(seed)
    cfg = cfg or get_preset("lite_R18")
    model = build_model(cfg).eval()
    with torch.no_grad():
        head = model.ins_head
        head.cate_pred.weight.normal_(0, 0.02)
        head.cate_pred.bias.fill_(-30.0)
        head.cate_pred.bias[:2] = torch.tensor([cate_bias, cate_bias - 0.5])
        for k in (1, 2, 3):
            getattr(head, f"kernel_lap{k}_pred").weight.normal_(0, 0.05)
            getattr(head, f"kernel_lap{k}_pred").bias.normal_(0, 0.5)
            conv = getattr(model.mask_head, f"offset_mask_conv_lap{k}")
            conv.weight.normal_(0, 0.1)
            conv.bias.normal_(0, 0.5)
    return model
