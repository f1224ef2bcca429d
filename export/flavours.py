"""The two exchangeable pieces of the static path per export flavour: the dynamic filter and Matrix NMS.

``lapmask.inference.static`` takes both as hooks (``filter_fn``, ``nms_fn``); this module supplies them:

============  ==========================================================  =====================================
flavour       dynamic filter (spec 4.3)                                   Matrix NMS (spec 6 step 7)
============  ==========================================================  =====================================
standard      ``gridsample``: GridSample + Mul + MatMul (opset >= 16)     plain ops: MatMul, Div, Less (upper
              ``deformconv``: ONNX ``DeformConv`` (opset >= 19)           triangle), Equal, ReduceMax/Min, Exp
plugins       ``lapmask::DynamicDeformConv`` (OPS.md)                     ``lapmask::MatrixNMS`` (OPS.md)
============  ==========================================================  =====================================

Every form computes the same function in eager PyTorch (``lapmask.ops.modulated_deform_conv``), and the eager
module that is traced is compared with the exported graph; the PyTorch reference of ``lapmask compare`` is the
plain ``DeployLapMask`` (``lapmask.ops``' default "pixel" sampling, bit-identical to the DCN reference), which the
grid-sample form matches to ~1e-7 relative. The custom nodes are emitted
by ``torch.autograd.Function.symbolic`` (TorchScript-based exporter); their attributes come from the op
contract table ``lapmask.ops.contract`` (one truth for symbolics, plugins and docs).

fp16 (``fp16=True``): the DeformConv form runs in float32 (ONNX DeformConv computes its sampling coordinates in
the tensor type; float16 coordinates near 300 px have 0.25 px spacing), the grid-sample form samples in float32
and multiplies in float16 (``lapmask.ops.deform_columns``), the plugin takes float16 storage (its contract widens
offsets to float32 inside). Matrix NMS is float32 in every flavour (mask areas overflow float16, spec 10.8).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lapmask.config import LapMaskConfig
from lapmask.inference.masks import FilterFn
from lapmask.inference.static import NmsFn
from lapmask.ops.contract import DOMAIN, DYNAMIC_DEFORM_CONV, MATRIX_NMS
from lapmask.ops.deform import dynamic_deform_filter, modulated_deform_conv, split_offset_mask
from lapmask.ops.matrix_nms import matrix_nms

FLAVOURS = ("standard", "plugins")
DCN_FORMS = ("gridsample", "deformconv")
DEFAULT_DCN_FORM = "gridsample"

# Minimum default-domain opset per form: GridSample-16, DeformConv-19 (TopK/Trilu/Resize need less).
MIN_OPSET = {"gridsample": 16, "deformconv": 19, "plugins": 16}


def _deform_attrs() -> dict[str, object]:
    """DeformConv-19 attributes with LapMask's values, from the contract table (``name_i`` / ``name_f`` style)."""
    out: dict[str, object] = {}
    for a in DYNAMIC_DEFORM_CONV.attributes:
        suffix = {"int": "i", "ints": "i", "float": "f", "floats": "f", "string": "s"}[a.type]
        out[f"{a.name}_{suffix}"] = a.lapmask_value
    return out


def _optional_absent(g: torch.Graph) -> torch.Value:
    """An omitted optional ONNX input (exported as the empty name ``""``)."""
    n = g.op("prim::Constant")
    n.setType(torch._C.OptionalType.ofTensor())
    return n


class _DeformConvFunction(torch.autograd.Function):
    """Modulated deformable conv whose eager forward is ``modulated_deform_conv`` (the eager default method);
    subclasses only choose the ONNX node it exports as (``symbolic``)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, offset: Tensor, mask: Tensor) -> Tensor:
        return modulated_deform_conv(x, weight, offset, mask)


class _DeformConvOnnx(_DeformConvFunction):
    """Exported as ONNX ``DeformConv`` (opset 19)."""

    @staticmethod
    def symbolic(g, x, weight, offset, mask):
        return g.op("DeformConv", x, weight, offset, _optional_absent(g), mask, **_deform_attrs())


class _DynamicDeformConvPlugin(_DeformConvFunction):
    """Exported as ``lapmask::DynamicDeformConv`` (OPS.md; inputs X, W, offset, B?, mask)."""

    @staticmethod
    def symbolic(g, x, weight, offset, mask):
        y = g.op(f"{DOMAIN}::{DYNAMIC_DEFORM_CONV.name}", x, weight, offset, _optional_absent(g), mask,
                 **_deform_attrs())
        y.setType(x.type().with_sizes([None, None, None, None]))  # dtype of X; shapes are the plugin's business
        return y


class _MatrixNmsPlugin(torch.autograd.Function):
    """Matrix NMS decay, exported as ``lapmask::MatrixNMS`` (inputs masks, scores, labels; attrs kernel, sigma)."""

    @staticmethod
    def forward(ctx, masks: Tensor, scores: Tensor, labels: Tensor, kernel: str, sigma: float) -> Tensor:
        decayed = matrix_nms(masks, labels, scores, kernel, sigma)  # areas from the masks, as the contract says
        return torch.where(scores < 0, scores, decayed.float())  # invalid entries unchanged (-1)

    @staticmethod
    def symbolic(g, masks, scores, labels, kernel, sigma):
        y = g.op(f"{DOMAIN}::{MATRIX_NMS.name}", masks, scores, labels, kernel_s=kernel, sigma_f=float(sigma))
        y.setType(scores.type().with_sizes([None]))
        return y


def _as_weight(kernels: Tensor, channels: int) -> Tensor:
    """kernels (Tensor[N, C*9]) -> Tensor[N, C, 3, 3]: W[n, c, a, b] = kernels[n, 9c + 3a + b] (spec 3.4)."""
    return kernels.reshape(kernels.shape[0], channels, 3, 3)


def deformconv_filter(feature: Tensor, offset_mask: Tensor, kernels: Tensor) -> Tensor:
    """Dynamic filter as ONNX DeformConv, always in float32 (see the module docstring for why).

    Args: feature (Tensor[1, C, H, W]); offset_mask (Tensor[1, 27, H, W]) raw; kernels (Tensor[N, C*9]).
    Returns: Tensor[N, H, W] in feature's dtype.
    """
    offset, mask = split_offset_mask(offset_mask.float())
    w = _as_weight(kernels.float(), feature.shape[1])
    return _DeformConvOnnx.apply(feature.float(), w, offset, mask)[0].to(feature.dtype)


def plugin_filter(feature: Tensor, offset_mask: Tensor, kernels: Tensor) -> Tensor:
    """Dynamic filter as ``lapmask::DynamicDeformConv`` in the feature's dtype (float16 allowed by the contract).

    Args/Returns: as ``deformconv_filter``.
    """
    offset, mask = split_offset_mask(offset_mask)
    dt = feature.dtype
    w = _as_weight(kernels.to(dt), feature.shape[1])
    return _DynamicDeformConvPlugin.apply(feature, w, offset.to(dt), mask.to(dt))[0]


def matrix_nms_graph(masks: Tensor, labels: Tensor, scores: Tensor, kernel: str, sigma: float,
                     areas: Tensor) -> Tensor:
    """Matrix NMS in plain ONNX-friendly ops, float32 throughout (spec 6 step 7, 10.8).

    Same arithmetic as ``lapmask.ops.matrix_nms``; the upper triangle (i < j) is a comparison of two ranges
    instead of ``Trilu`` so that runtimes without Trilu take it, and no K x K constant is stored.

    Args:
        masks (Tensor[K, H, W]) binary, sorted by descending score; labels (Tensor[K]); scores (Tensor[K]);
        areas (Tensor[K]): pixel counts of ``masks``.
    Returns:
        Tensor[K] float32: decayed scores.
    """
    if kernel not in ("gaussian", "linear"):
        raise ValueError(f"unknown Matrix NMS kernel {kernel!r}; use 'gaussian' or 'linear'")
    k = masks.shape[0]
    flat = masks.reshape(k, -1).float()
    areas = areas.float()
    inter = flat @ flat.t()  # exact pixel counts in float32 (< 2^24)
    union = areas.view(k, 1) + areas.view(1, k) - inter
    idx = torch.arange(k, device=masks.device)
    upper = (idx.view(k, 1) < idx.view(1, k)).float()  # i < j: only higher-scored candidates decay lower ones
    same = (labels.view(k, 1) == labels.view(1, k)).float()
    decay_iou = inter / union.clamp(min=1) * upper * same
    comp = decay_iou.max(0).values.view(k, 1)
    if kernel == "gaussian":
        ratio = torch.exp(-sigma * decay_iou ** 2) / torch.exp(-sigma * comp ** 2)
    else:
        ratio = (1 - decay_iou) / (1 - comp)
    return scores.float() * ratio.min(0).values


def gridsample_filter(feature: Tensor, offset_mask: Tensor, kernels: Tensor) -> Tensor:
    """Dynamic filter as GridSample + Mul + MatMul (``lapmask.ops`` grid-sample method; sampling in float32).

    Args/Returns: as ``deformconv_filter``.
    """
    return dynamic_deform_filter(feature, offset_mask, kernels, method="grid_sample")


def make_filter_fn(flavour: str, dcn_form: str = DEFAULT_DCN_FORM) -> FilterFn:
    """The dynamic filter for a flavour / DCN form (see the table in the module docstring)."""
    check_flavour(flavour, dcn_form)
    if flavour == "plugins":
        return plugin_filter
    return deformconv_filter if dcn_form == "deformconv" else gridsample_filter


def make_nms_fn(cfg: LapMaskConfig, flavour: str, fp16: bool = False) -> NmsFn:
    """Matrix NMS hook ``(binary masks [K, H, W], labels [K], sorted scores [K], areas [K]) -> decayed [K]``."""
    check_flavour(flavour)
    ic = cfg.inference
    if flavour == "plugins":
        mask_dtype = torch.float16 if fp16 else torch.float32

        def plugin_nms(masks: Tensor, labels: Tensor, scores: Tensor, areas: Tensor) -> Tensor:
            return _MatrixNmsPlugin.apply(masks.to(mask_dtype), scores.float(), labels.to(torch.int32),
                                          ic.nms_kernel, float(ic.nms_sigma))
        return plugin_nms

    def standard_nms(masks: Tensor, labels: Tensor, scores: Tensor, areas: Tensor) -> Tensor:
        return matrix_nms_graph(masks, labels, scores, ic.nms_kernel, float(ic.nms_sigma), areas)
    return standard_nms


def check_flavour(flavour: str, dcn_form: str | None = None) -> None:
    """Raise ValueError for an unknown flavour / DCN form."""
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {flavour!r}; choose one of {', '.join(FLAVOURS)}")
    if dcn_form is not None and dcn_form not in DCN_FORMS:
        raise ValueError(f"unknown DCN form {dcn_form!r}; choose one of {', '.join(DCN_FORMS)}")


HookPair = tuple[FilterFn, Callable[..., Tensor]]


def make_hooks(cfg: LapMaskConfig, flavour: str, dcn_form: str = DEFAULT_DCN_FORM, fp16: bool = False) -> HookPair:
    """(filter_fn, nms_fn) for ``DeployLapMask`` / ``static_inference``."""
    return make_filter_fn(flavour, dcn_form), make_nms_fn(cfg, flavour, fp16)
