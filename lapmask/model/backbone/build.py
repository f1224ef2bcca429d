"""``build_backbone(cfg)``: the bottom-up network + FPN named by ``cfg.backbone`` (spec 2)."""
from __future__ import annotations

from torch import nn

from lapmask.config import BackboneConfig, LapMaskConfig
from lapmask.model.backbone.fpn import FPN
from lapmask.model.backbone.norms import use_trainable_norms
from lapmask.model.backbone.resnet import ResNet
from lapmask.model.backbone.vovnet import VoVNet


def build_bottom_up(bb: BackboneConfig) -> tuple[nn.Module, tuple[str, ...]]:
    """Return (bottom-up module, the four feature names the FPN consumes, high to low resolution)."""
    if bb.name == "resnet":
        body = ResNet(depth=bb.depth, stride_in_1x1=bb.stride_in_1x1, freeze_at=bb.freeze_at,
                      deform_on_per_stage=tuple(bb.deform_on_per_stage), deform_modulated=bb.deform_modulated,
                      res2_out_channels=bb.res2_out_channels, stem_out_channels=bb.stem_out_channels)
        return body, ("res2", "res3", "res4", "res5")
    if bb.name == "vovnet":
        if any(bb.deform_on_per_stage):
            raise ValueError("deformable stages are not supported for VoVNet (the official V_57_3x uses none); "
                             "set backbone.deform_on_per_stage to all false")
        return VoVNet(depth=bb.depth, freeze_at=bb.freeze_at), ("stage2", "stage3", "stage4", "stage5")
    raise ValueError(f"unknown backbone.name {bb.name!r}; choose 'resnet' or 'vovnet' (Swin is not supported)")


def build_backbone(cfg: LapMaskConfig | BackboneConfig) -> FPN:
    """Build the backbone for ``cfg`` (a LapMaskConfig or its BackboneConfig).

    Returns an ``FPN`` whose ``forward(x[B, 3, H, W]) -> {"p2", ..., "p6"}`` (H, W multiples of 32) and whose
    ``state_dict`` keys, prefixed with ``backbone.``, are the official ones (spec 8.1) for ``norm`` "FrozenBN"
    ("BN" adds ``num_batches_tracked`` buffers).
    """
    bb = cfg.backbone if isinstance(cfg, LapMaskConfig) else cfg
    body, in_features = build_bottom_up(bb)
    use_trainable_norms(body, bb.norm)
    return FPN(body, in_features, bb.fpn_out_channels, top_block=bb.p6)
