"""The official dynamic inference path (spec 6), kept as the reference; without the official crash (spec 9.1).

Variable candidate counts via boolean indexing, exactly in the official order of operations, including the
quirk that with <= max_per_img survivors the output is not re-sorted (spec 6 step 9).
"""
from __future__ import annotations

import torch
from torch import Tensor

from lapmask.config import LapMaskConfig
from lapmask.inference.flatten import cell_strides, flat_kernels, flat_scores
from lapmask.inference.masks import instance_mask_logits
from lapmask.ops.matrix_nms import matrix_nms


def _empty(like: Tensor, hw: tuple[int, int]) -> dict[str, Tensor]:
    return {"scores": like.new_zeros(0), "labels": torch.zeros(0, dtype=torch.int64, device=like.device),
            "probs": like.new_zeros((0, *hw))}


def mask_nms_official(labels: Tensor, masks: Tensor, areas: Tensor, scores: Tensor, nms_thr: float) -> Tensor:
    """Greedy per-class mask NMS (official ``utils.mask_nms``, ``NMS_TYPE = "mask"``). Returns keep (bool [N]).

    Candidates are sorted by descending score; j is dropped when some kept i < j of the same label has
    IoU > nms_thr (MASK_THR reused as an IoU threshold, spec 6 step 7).
    """
    n = labels.shape[0]
    flat = masks.reshape(n, -1).float()
    inter = flat @ flat.t()
    iou = inter / (areas.view(n, 1) + areas.view(1, n) - inter)
    keep = torch.ones(n, dtype=torch.bool, device=labels.device)
    for i in range(n - 1):
        if not keep[i]:
            continue
        drop = (iou[i, i + 1:] > nms_thr) & (labels[i + 1:] == labels[i])
        keep[i + 1:] &= ~drop
    return keep


@torch.no_grad()
def dynamic_single(outputs: dict[str, list[Tensor]], b: int, cfg: LapMaskConfig) -> dict[str, Tensor]:
    """Official per-image inference up to (not including) pasting.

    Returns:
        dict: ``scores`` (Tensor[N]), ``labels`` (Tensor[N] int64), ``probs`` (Tensor[N, H/4, W/4]) in the official
        output order.
    """
    ic, h = cfg.inference, cfg.head
    f1 = outputs["mask_feats"][0]
    hw4 = (int(f1.shape[-2]), int(f1.shape[-1]))
    cate = flat_scores(outputs["cate"], b)  # [cells, K]
    inds = cate > ic.score_thr
    scores = cate[inds]
    if scores.numel() == 0:
        return _empty(f1, hw4)
    inds = inds.nonzero()  # row-major (cell, class) order, as the official code enumerates them
    labels = inds[:, 1]
    kernels = flat_kernels(outputs["kernel"], b)[inds[:, 0]]
    strides = cell_strides(h.num_grids, h.fpn_instance_strides, f1.device)[inds[:, 0]]

    probs = instance_mask_logits(outputs["mask_feats"], outputs["offsets"], kernels, b).sigmoid()
    masks = probs > ic.maskness_thr
    areas = masks.sum((1, 2)).float()
    keep = areas > strides
    if not bool(keep.any()):
        return _empty(f1, hw4)
    masks, probs, areas, scores, labels = masks[keep], probs[keep], areas[keep], scores[keep], labels[keep]
    scores = scores * (probs * masks.float()).sum((1, 2)) / areas  # maskness

    order = torch.argsort(scores, descending=True)[: ic.nms_pre]
    masks, probs, areas, scores, labels = masks[order], probs[order], areas[order], scores[order], labels[order]
    if ic.nms_type == "matrix":
        scores = matrix_nms(masks, labels, scores, ic.nms_kernel, ic.nms_sigma, areas)
        keep = scores >= ic.update_thr
    elif ic.nms_type == "mask":
        keep = mask_nms_official(labels, masks, areas, scores, ic.mask_thr)
    else:
        raise ValueError(f"unknown nms_type {ic.nms_type!r}")
    keep = keep & ((probs > ic.mask_thr).sum((1, 2)) > 1)
    if not bool(keep.any()):
        return _empty(f1, hw4)
    probs, scores, labels = probs[keep], scores[keep], labels[keep]
    if scores.numel() > ic.max_per_img:  # re-sorted only when truncating (official quirk, spec 6 step 9)
        order = torch.argsort(scores, descending=True)[: ic.max_per_img]
        probs, scores, labels = probs[order], scores[order], labels[order]
    return {"scores": scores, "labels": labels, "probs": probs}
