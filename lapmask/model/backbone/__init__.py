"""Backbones (ResNet, VoVNet-eSE) + FPN with detectron2's module names, and pretrained-weight loading (spec 2)."""
from lapmask.model.backbone.build import build_backbone, build_bottom_up
from lapmask.model.backbone.fpn import FPN, LastLevelMaxPool, LastLevelP6
from lapmask.model.backbone.frozen_bn import FrozenBatchNorm2d
from lapmask.model.backbone.pretrained import CheckpointFormatError, load_backbone_weights
from lapmask.model.backbone.resnet import ResNet
from lapmask.model.backbone.vovnet import VoVNet

__all__ = ["build_backbone", "build_bottom_up", "FPN", "LastLevelMaxPool", "LastLevelP6", "FrozenBatchNorm2d",
           "CheckpointFormatError", "load_backbone_weights", "ResNet", "VoVNet"]
