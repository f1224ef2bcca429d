"""Import the official LapMask code (``adet``) against detectron2's Python sources on a CPU, with runtime stubs.

Nothing from the official repositories is copied here: the user points ``--lapmask-root`` and
``--detectron2-root`` at their own checkouts (tjqansthd/LapMask, facebookresearch/detectron2) and this module
patches the running interpreter so that the official model builds and runs on CPU:

1. ``detectron2._C`` (the compiled extension) does not exist: an empty module is registered under that name so
   ``detectron2.layers.deform_conv`` defines its real ``DeformConv``/``ModulatedDeformConv`` classes.
2. detectron2's ``modulated_deform_conv`` (a CUDA-only autograd Function that raises on CPU) is replaced by
   ``lapmask.ops.modulated_deform_conv_reference``, a readable re-implementation of the CUDA kernel
   ``modulated_deformable_im2col_gpu_kernel`` (spec 4.3). This is the only compiled op the LapMask path needs
   (the dynamic filter, and the backbone DCN of R101_DCN_3x). It is patched before ``adet`` is imported because
   ``adet/modeling/lapmask/utils.py`` binds the name at import time.
3. The inference crash of spec 9.1 (two bare expression lines, ``matrix`` and ``nms & filter.matrix``, in
   ``LapMask.inference_single_image``) is neutralised WITHOUT editing the checkout: module globals named
   ``matrix``, ``nms`` and ``filter`` are injected into ``adet.modeling.lapmask.lapmask`` so both expressions
   evaluate harmlessly (``None``; ``0 & 0``). The module never calls the ``filter`` builtin, so shadowing it
   there changes nothing else. The intended behaviour (matrix NMS) then runs as written.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

_SETUP_DONE: dict[str, Any] = {}


def _dcn_reference(
    input: Tensor,
    offset: Tensor,
    mask: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
    deformable_groups: int = 1,
) -> Tensor:
    """Drop-in for detectron2 ``modulated_deform_conv`` (same positional signature) on CPU.

    Args:
        input (Tensor[B, C, H, W]); offset (Tensor[B, 18, Ho, Wo]) (dy, dx) per tap; mask (Tensor[B, 9, Ho, Wo])
        already sigmoid-ed; weight (Tensor[N, C, 3, 3]); bias (Tensor[N] | None).
    Returns:
        Tensor[B, N, Ho, Wo].
    """
    from lapmask.ops import modulated_deform_conv_reference

    if groups != 1 or deformable_groups != 1:
        raise NotImplementedError("the CPU stub supports groups = deformable_groups = 1 only (all LapMask uses)")
    stride, padding, dilation = (int(v[0]) if isinstance(v, (tuple, list)) else int(v)
                                 for v in (stride, padding, dilation))
    if bias is not None and bias.numel() != weight.shape[0]:
        bias = None  # detectron2 passes a 1-element fake tensor when there is no bias
    return modulated_deform_conv_reference(input, weight, offset, mask, bias, stride, padding, dilation)


def setup_official(lapmask_root: str | Path, detectron2_root: str | Path) -> types.ModuleType:
    """Make ``adet`` importable with the CPU stubs; returns the ``adet.modeling.lapmask.lapmask`` module.

    Raises:
        FileNotFoundError: when a root does not look like the expected checkout.
    """
    lapmask_root, detectron2_root = Path(lapmask_root).resolve(), Path(detectron2_root).resolve()
    if "module" in _SETUP_DONE:
        if _SETUP_DONE["roots"] != (lapmask_root, detectron2_root):
            raise RuntimeError("setup_official was already called with other roots in this process")
        return _SETUP_DONE["module"]
    if not (lapmask_root / "adet" / "modeling" / "lapmask" / "lapmask.py").is_file():
        raise FileNotFoundError(f"{lapmask_root} is not a LapMask checkout (no adet/modeling/lapmask/lapmask.py)")
    if not (detectron2_root / "detectron2" / "layers" / "deform_conv.py").is_file():
        raise FileNotFoundError(f"{detectron2_root} is not a detectron2 checkout (no detectron2/layers/deform_conv.py)")
    for p in (str(detectron2_root), str(lapmask_root)):
        if p not in sys.path:
            sys.path.insert(0, p)

    # (1) fake compiled extension, so detectron2 defines the real DCN module classes.
    sys.modules.setdefault("detectron2._C", types.ModuleType("detectron2._C"))
    import detectron2.layers.deform_conv as d2_deform

    # (2) the only compiled op the LapMask path needs.
    d2_deform.modulated_deform_conv = _dcn_reference

    import adet  # noqa: F401  (registers LapMask and the VoVNet/Swin backbones)
    import adet.modeling.lapmask.lapmask as lm
    import adet.modeling.lapmask.utils as lm_utils

    if lm_utils.modulated_deform_conv is not _dcn_reference:
        raise RuntimeError("adet bound detectron2's modulated_deform_conv before the stub was installed")

    # (3) spec 9.1: make the two bare expression lines harmless.
    lm.matrix = None
    lm.nms = 0
    lm.filter = types.SimpleNamespace(matrix=0)

    _SETUP_DONE.update(module=lm, roots=(lapmask_root, detectron2_root))
    return lm


def official_cfg(lapmask_root: str | Path, name: str, min_size_test: int | None = None,
                 max_size_test: int | None = None) -> Any:
    """The detectron2 CfgNode of ``configs/LapMask/<name>.yaml`` on CPU (call ``setup_official`` first)."""
    from adet.config import get_cfg

    path = Path(lapmask_root) / "configs" / "LapMask" / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no official config {path}")
    cfg = get_cfg()
    cfg.merge_from_file(str(path))
    cfg.MODEL.DEVICE = "cpu"
    if min_size_test is not None:
        cfg.INPUT.MIN_SIZE_TEST = int(min_size_test)
    if max_size_test is not None:
        cfg.INPUT.MAX_SIZE_TEST = int(max_size_test)
    cfg.freeze()
    return cfg


def build_official(cfg: Any) -> torch.nn.Module:
    """detectron2 ``build_model`` (META_ARCH_REGISTRY -> adet ``LapMask``), eval mode, float32, CPU."""
    from detectron2.modeling import build_model

    model = build_model(cfg)
    return model.eval().float()


def check_keys(state_dict: dict[str, Tensor], tsv: str | Path) -> list[str]:
    """Compare a state_dict with an official key list (``key<TAB>shape`` per line); returns problems (empty = ok)."""
    rows = [line.split("\t") for line in Path(tsv).read_text().splitlines() if line.strip()]
    ref = {r[0]: r[1].strip() for r in rows}
    problems = []
    if list(state_dict) != [r[0] for r in rows]:
        missing = sorted(set(ref) - set(state_dict))
        extra = sorted(set(state_dict) - set(ref))
        problems.append(f"key order/set differs: {len(missing)} missing {missing[:5]}, {len(extra)} extra {extra[:5]}")
    for k, v in state_dict.items():
        if k in ref and ref[k] != str(tuple(v.shape)):
            problems.append(f"{k}: shape {tuple(v.shape)} != {ref[k]}")
    return problems
