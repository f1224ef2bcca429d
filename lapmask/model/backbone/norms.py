"""Trainable normalisation for backbones trained from scratch (``backbone.norm`` "BN" or "GN").

The backbones are built with FrozenBN everywhere (the official layout, spec 2.1). ``use_trainable_norms`` then
swaps the FrozenBN of every *trainable* conv for ``nn.BatchNorm2d`` or ``nn.GroupNorm(32)``, initialised to the
identity; convs frozen by ``freeze_at`` keep FrozenBN, as detectron2 does for frozen stages.

Why (deviation on purpose, used by the CPU ``lite_*`` presets only): FrozenBN at its identity initialisation
leaves a from-scratch ResNet without any normalisation. Measured on lite_R18 after a 15-minute demo on the synthetic
set: activations reached 3.6e6 with FrozenBN (beyond float16, so the fp16 export overflowed) and stay at most 151
with BN. Official presets keep FrozenBN and their official state_dict keys (BN adds ``num_batches_tracked``).
"""
from __future__ import annotations

from torch import nn

from lapmask.model.backbone.frozen_bn import FrozenBatchNorm2d

NORMS = ("FrozenBN", "BN", "GN")
GN_GROUPS = 32


def make_norm(kind: str, channels: int) -> nn.Module:
    """A fresh identity-initialised norm layer of ``kind`` ("BN" | "GN") for ``channels`` channels."""
    if kind == "BN":
        return nn.BatchNorm2d(channels)
    if kind == "GN":
        return nn.GroupNorm(min(GN_GROUPS, channels), channels)
    raise ValueError(f"unknown trainable norm {kind!r}; choose one of {NORMS[1:]}")


def use_trainable_norms(module: nn.Module, kind: str) -> nn.Module:
    """Replace, in place, each FrozenBatchNorm2d whose parent holds trainable parameters by a ``kind`` norm.

    The parent of a FrozenBN is the conv it follows (``Conv2d.norm``) or the nn.Sequential holding both (VoVNet),
    so "the parent has a parameter with requires_grad" is exactly "this conv is not frozen by freeze_at".
    Returns ``module``; ``kind == "FrozenBN"`` changes nothing.
    """
    if kind not in NORMS:
        raise ValueError(f"backbone.norm must be one of {NORMS}, got {kind!r}")
    if kind == "FrozenBN":
        return module
    for parent in list(module.modules()):
        trainable = any(p.requires_grad for p in parent.parameters(recurse=False))
        if not trainable:
            trainable = any(p.requires_grad for c in parent.children() if not isinstance(c, FrozenBatchNorm2d)
                            for p in c.parameters(recurse=False))
        for name, child in list(parent.named_children()):
            if isinstance(child, FrozenBatchNorm2d) and trainable:
                parent.add_module(name, make_norm(kind, child.num_features))
    return module
