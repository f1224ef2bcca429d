"""Helpers for the export tests (imported by conftest.py and the test files): an ENGINEERED lite_R18 with
detections of distinct scores, inputs, the eager reference, cached exports.

Engineering (no training): every conv gets He-normal weights so features carry signal; the category predictor
gets weights of std 2 / sqrt(fan_in) (logits of std ~2) and a bias that sets how many cells pass the 0.1 score
threshold (-4.7: 48-67 candidates on lite_R18 at the test sizes, more than MAX_DETS; -20: none); the kernel predictors get larger weights
and a negative bias (varied, partial masks instead of all-or-nothing ones); the offset convs get small random
weights (offsets of about a pixel, so the deformable sampling is really exercised).
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

LITE = "lite_R18"
K_PRE = 200
MAX_DETS = 20
MANY_BIAS = -4.7  # > MAX_DETS detections, < K_PRE candidates (48 and 67 at SIZES; score gaps >= 1.7e-5)
NONE_BIAS = -20.0  # sigmoid(-20 + a few) << 0.1: zero candidates
TRACE_HW = (96, 128)
SIZES = ((224, 288), (256, 192))  # two padded input sizes, multiples of 32
MIN_SCORE_GAP = 1e-5  # >> float noise (~1e-7), so ORT and PyTorch cannot reorder candidates


def engineered_model(cate_bias: float = MANY_BIAS, seed: int = 3, preset: str = LITE) -> tuple[nn.Module, object]:
    """lite_R18 with engineered weights (see module docstring). Returns (model in eval mode, cfg)."""
    from lapmask.config import get_preset
    from lapmask.model.lapmask import build_model

    cfg = get_preset(preset)
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.Conv2d):
                mod.weight.normal_(0, math.sqrt(2.0 / mod.weight[0].numel()), generator=g)
                if mod.bias is not None:
                    mod.bias.zero_()
        head = model.ins_head
        head.cate_pred.weight.normal_(0, 2.0 / math.sqrt(head.cate_pred.weight[0].numel()), generator=g)
        head.cate_pred.bias.fill_(cate_bias)
        for name in ("kernel_lap1_pred", "kernel_lap2_pred", "kernel_lap3_pred"):
            conv = getattr(head, name)
            conv.weight.normal_(0, 3.0 / math.sqrt(conv.weight[0].numel()), generator=g)
            conv.bias.fill_(-0.2)
        for k in (1, 2, 3):
            conv = getattr(model.mask_head, f"offset_mask_conv_lap{k}")
            conv.weight.normal_(0, 0.5 / math.sqrt(conv.weight[0].numel()), generator=g)
            conv.bias.zero_()
    return model, cfg


def with_cate_bias(model: nn.Module, bias: float) -> nn.Module:
    """A copy of ``model`` with another category bias (same everything else)."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        m.ins_head.cate_pred.bias.fill_(bias)
    return m


def smooth_image(h: int, w: int, seed: int) -> torch.Tensor:
    """uint8 [1, 3, h, w] BGR with low-frequency structure (bicubic-upsampled noise)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand((1, 3, h // 16 + 2, w // 16 + 2), generator=g)
    t = torch.nn.functional.interpolate(low, size=(h, w), mode="bicubic", align_corners=False)
    t = (t - t.min()) / (t.max() - t.min()) * 255
    return t.round().clamp(0, 255).to(torch.uint8)


def deploy_inputs(hw: tuple[int, int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(image [1, 3, H, W] uint8 padded, image_size [1, 2] int32) with a few rows/columns of padding."""
    h, w = hw
    img = smooth_image(h, w, seed)
    ih, iw = h - 13, w - 29
    img[:, :, ih:] = 0
    img[:, :, :, iw:] = 0
    return img, torch.tensor([[ih, iw]], dtype=torch.int32)


def reference(model: nn.Module, image: torch.Tensor, size: torch.Tensor, k_pre: int = K_PRE,
              max_dets: int = MAX_DETS) -> tuple[list, torch.Tensor]:
    """Eager static path (default hooks) and the sorted scores that entered Matrix NMS."""
    from lapmask.inference.deploy_module import DeployLapMask
    from lapmask.inference.static import default_nms_fn

    seen = {}
    base = default_nms_fn(model.cfg)

    def spy(masks, labels, scores, areas):
        seen["scores"] = scores.detach().clone()
        return base(masks, labels, scores, areas)

    with torch.no_grad():
        out = DeployLapMask(model, k_pre, max_dets, nms_fn=spy).eval()(image, size)
    return [t.numpy() for t in out], seen["scores"]


def min_gap(scores: torch.Tensor) -> float:
    v = torch.sort(scores[scores >= 0], descending=True).values
    return float((v[:-1] - v[1:]).min()) if v.numel() > 1 else math.inf


class Exports:
    """Exports of the engineered model, made once per test session and shared (tracing costs ~10 s each)."""

    def __init__(self, model: nn.Module, cfg: object, folder: Path) -> None:
        self.model, self.cfg, self.folder = model, cfg, folder
        self.cache: dict[tuple, Path] = {}

    def onnx(self, flavour: str = "standard", dcn_form: str = "gridsample", fp16: bool = False,
             fixed: tuple[int, int] | None = None) -> Path:
        from export.onnx_export import ExportOptions, export_onnx

        key = ("onnx", flavour, dcn_form, fp16, fixed)
        if key not in self.cache:
            path = self.folder / f"{flavour}_{dcn_form}_{'fp16' if fp16 else 'fp32'}_{fixed or 'dyn'}.onnx"
            opts = ExportOptions(flavour=flavour, dcn_form=dcn_form, fp16=fp16, input_hw=fixed, k_pre=K_PRE,
                                 max_dets=MAX_DETS)
            # validate=False: the tests run the graph checks and much stricter comparisons themselves
            export_onnx(self.model, self.cfg, path, opts, validate=False, trace_hw=TRACE_HW)
            self.cache[key] = path
        return self.cache[key]

    def torchscript(self) -> Path:
        from export.onnx_export import ExportOptions
        from export.torchscript import export_torchscript

        key = ("torchscript",)
        if key not in self.cache:
            path = self.folder / "lite.pt"
            export_torchscript(self.model, self.cfg, path, ExportOptions(k_pre=K_PRE, max_dets=MAX_DETS),
                               trace_hw=TRACE_HW, check_hw=SIZES[1])
            self.cache[key] = path
        return self.cache[key]


def plugins_available() -> str | None:
    """None when the plugins flavour can run in ONNX Runtime here, else the reason."""
    try:
        import onnxruntime_extensions  # noqa: F401
    except ImportError:
        return "onnxruntime-extensions is not installed (pip install onnxruntime-extensions)"
    try:
        from lapmask.ops import clib
    except ImportError as e:
        return f"lapmask.ops.clib unavailable: {e}"
    if not clib.is_available():
        return "liblapmask_kernels is not built (python -m lapmask.ops.build_kernels --cuda off)"
    return None


def run_ort(path: Path, flavour: str, image: torch.Tensor, size: torch.Tensor) -> list[np.ndarray]:
    from export.predictors.ort import make_session

    return make_session(str(path), flavour).run(None, {"image": image.numpy(), "image_size": size.numpy()})


def assert_parity(ref: list[np.ndarray], got: list[np.ndarray], mask_thr: float) -> None:
    """The issue's bar, with instances paired by rank (the distinct scores make the order unique)."""
    num_dets, scores, labels, masks, num_cand = ref
    assert got[0].dtype == np.int32 and got[2].dtype == np.int32 and got[4].dtype == np.int32
    assert got[1].dtype == np.float32 and got[3].dtype == np.float32
    assert [g.shape for g in got] == [r.shape for r in ref]
    np.testing.assert_array_equal(got[0], num_dets)
    np.testing.assert_array_equal(got[4], num_cand)
    np.testing.assert_array_equal(got[2], labels)
    np.testing.assert_allclose(got[1], scores, rtol=0, atol=1e-4)
    n = int(num_dets[0])
    a, b = masks[0, :n] > mask_thr, got[3][0, :n] > mask_thr
    inter = (a & b).sum((1, 2))
    union = (a | b).sum((1, 2))
    assert (union > 0).all(), "valid instances have non-empty masks"
    iou = inter / union
    assert iou.min() >= 0.99, f"mask IoU per instance {np.round(iou, 4)}"
    assert not got[3][0, n:].any() and not got[1][0, n:].any() and (got[2][0, n:] == -1).all()  # padding


def check_form(exports, references, lite, flavour: str, dcn_form: str) -> None:
    """Export one form, validate the graph structurally, then hold ORT to the parity bar at both sizes."""
    from export.checks import check_onnx_graph

    path = exports.onnx(flavour, dcn_form)
    check_onnx_graph(path, flavour=flavour, dcn_form=dcn_form, opset=19, fp16=False)
    _, cfg = lite
    for hw in SIZES:
        (image, size), ref = references[hw]
        assert int(ref[0][0]) == MAX_DETS
        assert_parity(ref, run_ort(path, flavour, image, size), cfg.inference.mask_thr)
