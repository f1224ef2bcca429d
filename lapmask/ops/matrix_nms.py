"""Matrix NMS exactly as the official code computes it (spec 6 step 7; SOLOv2 ``utils.matrix_nms``).

Candidates are sorted by descending score. With D_ij = IoU_ij * [label_i == label_j] for i < j (0 otherwise)
and the compensation c_i = max_k D_ki:

    gaussian: decay_j = min_i exp(-sigma * D_ij^2) / exp(-sigma * c_i^2)   (sigma multiplies; not the paper's 1/sigma)
    linear:   decay_j = min_i (1 - D_ij) / (1 - c_i)

The min runs over *all* i, including i >= j where D_ij = 0 (those terms are >= 1 and never win over i = 0,
whose c_0 = 0). Areas are the 0.2-mask pixel counts passed in by inference. All math in float32 or wider.

Deliberate extension: the IoU of two EMPTY masks (union 0) is defined as 0 instead of the official 0/0 = NaN.
The official path never meets it (it drops masks with area <= stride before NMS); the static path keeps invalid
candidates, which may be empty, at the end of the sorted list, and a NaN there would poison the min over i.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def _check(masks: Tensor, labels: Tensor, scores: Tensor, kernel: str) -> None:
    if kernel not in ("gaussian", "linear"):
        raise ValueError(f"unknown Matrix NMS kernel {kernel!r}; use 'gaussian' or 'linear'")
    k = masks.shape[0]
    if labels.shape != (k,) or scores.shape != (k,):
        raise ValueError(f"masks {tuple(masks.shape)}, labels {tuple(labels.shape)}, scores {tuple(scores.shape)}: "
                         "expected [K, ...], [K], [K]")


def matrix_nms(masks: Tensor, labels: Tensor, scores: Tensor, kernel: str = "gaussian", sigma: float = 2.0,
               areas: Tensor | None = None) -> Tensor:
    """Vectorised Matrix NMS (the fast path; also what the static graph exports).

    Args:
        masks (Tensor[K, ...]): binary masks (bool or 0/1), sorted by descending score.
        labels (Tensor[K]): class indices.
        scores (Tensor[K]): scores, sorted descending.
        areas (Tensor[K] | None): mask areas; computed from ``masks`` when None.
    Returns:
        Tensor[K]: decayed scores (float32 or wider).
    """
    _check(masks, labels, scores, kernel)
    k = masks.shape[0]
    dt = torch.promote_types(scores.dtype, torch.float32)
    if k == 0:
        return scores.to(dt)
    flat = masks.reshape(k, -1).to(dt)
    areas = flat.sum(1) if areas is None else areas.to(dt)
    inter = flat @ flat.t()
    union = areas.view(k, 1) + areas.view(1, k) - inter
    iou = torch.triu(inter / union.clamp(min=1), diagonal=1)  # union >= 1 unless both masks are empty
    same = (labels.view(k, 1) == labels.view(1, k)).to(dt)
    decay_iou = iou * torch.triu(same, diagonal=1)
    comp = decay_iou.max(0).values.view(k, 1)  # c_i, one per row i
    if kernel == "gaussian":
        ratio = torch.exp(-sigma * decay_iou ** 2) / torch.exp(-sigma * comp ** 2)
    else:
        ratio = (1 - decay_iou) / (1 - comp)
    return scores.to(dt) * ratio.min(0).values


def matrix_nms_reference(masks: Tensor, labels: Tensor, scores: Tensor, kernel: str = "gaussian",
                         sigma: float = 2.0, areas: Tensor | None = None) -> Tensor:
    """Plain double loop over the spec's formula (readable, slow; float64 math)."""
    _check(masks, labels, scores, kernel)
    k = masks.shape[0]
    if k == 0:
        return torch.zeros(0, dtype=torch.float64)
    flat = masks.reshape(k, -1).double()
    area = [float(a) for a in (flat.sum(1) if areas is None else areas.double())]
    lab = [int(v) for v in labels]

    def d(i: int, j: int) -> float:
        if i >= j or lab[i] != lab[j]:
            return 0.0
        inter = float((flat[i] * flat[j]).sum())
        union = area[i] + area[j] - inter
        return inter / union if union > 0 else 0.0

    comp = [max([d(m, i) for m in range(k)], default=0.0) for i in range(k)]
    out = []
    for j in range(k):
        best = math.inf
        for i in range(k):
            if kernel == "gaussian":
                r = math.exp(-sigma * d(i, j) ** 2) / math.exp(-sigma * comp[i] ** 2)
            else:
                # c_i == 1 (identical same-label masks) divides by zero here as in the official code.
                r = float(np.float64(1 - d(i, j)) / np.float64(1 - comp[i]))
            best = min(best, r)
        out.append(float(scores[j]) * best)
    return torch.tensor(out, dtype=torch.float64)
