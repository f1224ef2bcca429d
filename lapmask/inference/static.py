"""The static, fixed-size inference path (contracts.md section 2-3, spec 10): what eager ``--static``,
TorchScript and ONNX all run.

Fixed K_pre candidates by TopK instead of a variable-size threshold, validity flags instead of removal
(invalid candidates get score -1 and sort last, where Matrix NMS -- which only lets higher-scored candidates decay
lower ones -- cannot touch valid results), Matrix NMS on the sorted list, TopK to max_dets. It equals the official
dynamic path whenever at most K_pre candidates pass the score threshold, and reports the count
(``num_candidates``) so callers can tell.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from lapmask.config import LapMaskConfig
from lapmask.inference.flatten import cell_strides, flat_kernels, flat_scores
from lapmask.inference.masks import FilterFn, instance_mask_logits
from lapmask.ops.deform import dynamic_deform_filter
from lapmask.ops.matrix_nms import matrix_nms

# (binary masks [K, H, W], labels [K], sorted scores [K] with invalid = -1, areas [K]) -> decayed scores [K]
NmsFn = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]

OUTPUT_NAMES = ("num_dets", "scores", "labels", "masks", "num_candidates")


def default_nms_fn(cfg: LapMaskConfig) -> NmsFn:
    ic = cfg.inference
    return lambda masks, labels, scores, areas: matrix_nms(masks, labels, scores, ic.nms_kernel, ic.nms_sigma, areas)


def static_single(outputs: dict[str, list[Tensor]], b: int, cfg: LapMaskConfig, k_pre: int, max_dets: int,
                  filter_fn: FilterFn = dynamic_deform_filter, nms_fn: NmsFn | None = None) -> tuple[Tensor, ...]:
    """Fixed-size inference for image b.

    Returns:
        num_dets (Tensor[] int32), scores (Tensor[max_dets] f32, padding 0), labels (Tensor[max_dets] int32,
        padding -1), masks (Tensor[max_dets, H/4, W/4] f32 probabilities, padding 0), num_candidates (Tensor[] int32).
    """
    ic, h = cfg.inference, cfg.head
    if ic.nms_type != "matrix":
        raise ValueError("the static path implements Matrix NMS only (nms_type='matrix')")
    nms_fn = nms_fn or default_nms_fn(cfg)
    cate = flat_scores(outputs["cate"], b)  # [cells, K]
    num_classes = cate.shape[1]
    flat = cate.reshape(-1)
    num_candidates = (flat > ic.score_thr).sum().to(torch.int32)
    k = min(k_pre, flat.shape[0])
    cand, idx = torch.topk(flat, k)  # sorted descending
    cells = torch.div(idx, num_classes, rounding_mode="floor")
    labels = idx - cells * num_classes
    valid = cand > ic.score_thr

    kernels = flat_kernels(outputs["kernel"], b)[cells]  # [k, 3, E]
    probs = instance_mask_logits(outputs["mask_feats"], outputs["offsets"], kernels, b, filter_fn).sigmoid()
    probs = probs.float()  # areas, maskness and scores stay fp32 (67,200-pixel areas overflow fp16)
    bin_masks = probs > ic.maskness_thr
    areas = bin_masks.sum((1, 2)).float()
    strides = cell_strides(h.num_grids, h.fpn_instance_strides, probs.device)[cells]
    valid = valid & (areas > strides)
    maskness = (probs * bin_masks.float()).sum((1, 2)) / areas.clamp(min=1.0)
    scores = torch.where(valid, cand.float() * maskness, torch.full_like(maskness, -1.0))

    n_nms = min(ic.nms_pre, k)
    scores, order = torch.topk(scores, n_nms)  # valid first, by maskness-rescored score
    bin_masks, probs, labels, areas = bin_masks[order], probs[order], labels[order], areas[order]
    valid = scores >= 0  # maskness-rescored valid scores are > 0
    decayed = nms_fn(bin_masks, labels, scores, areas)
    final_ok = valid & (decayed >= ic.update_thr) & ((probs > ic.mask_thr).sum((1, 2)) > 1)
    final = torch.where(final_ok, decayed, torch.full_like(decayed, -1.0))

    m = min(max_dets, n_nms)
    top, sel = torch.topk(final, m)
    ok = top >= 0
    out_scores = torch.where(ok, top, torch.zeros_like(top))
    out_labels = torch.where(ok, labels[sel], torch.full_like(labels[sel], -1)).to(torch.int32)
    out_masks = probs[sel] * ok.view(-1, 1, 1).to(probs.dtype)
    if m < max_dets:  # fewer candidates than output slots (tiny grids): pad to the fixed size
        pad = max_dets - m
        out_scores = torch.cat([out_scores, out_scores.new_zeros(pad)])
        out_labels = torch.cat([out_labels, out_labels.new_full((pad,), -1)])
        out_masks = torch.cat([out_masks, out_masks.new_zeros((pad, *out_masks.shape[1:]))])
    num_dets = ok.sum().to(torch.int32)
    return num_dets, out_scores, out_labels, out_masks, num_candidates


def static_inference(outputs: dict[str, list[Tensor]], cfg: LapMaskConfig, k_pre: int | None = None,
                     max_dets: int | None = None, filter_fn: FilterFn = dynamic_deform_filter,
                     nms_fn: NmsFn | None = None) -> tuple[Tensor, ...]:
    """Batched static inference; outputs as contracts.md section 3 (``OUTPUT_NAMES``).

    Returns:
        num_dets (Tensor[B] int32), scores (Tensor[B, K] f32), labels (Tensor[B, K] int32),
        masks (Tensor[B, K, H/4, W/4] f32), num_candidates (Tensor[B] int32), K = max_dets.
    """
    k_pre = cfg.inference.k_pre if k_pre is None else k_pre
    max_dets = cfg.inference.max_per_img if max_dets is None else max_dets
    per_image = [static_single(outputs, b, cfg, k_pre, max_dets, filter_fn, nms_fn)
                 for b in range(outputs["cate"][0].shape[0])]
    return tuple(torch.stack(t) for t in zip(*per_image))
