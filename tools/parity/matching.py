"""Instance matching for the parity check (our code; numpy, scipy optional).

Two instance sets (labels [N], scores [N], boolean masks [N, H, W]) are matched label by label with the
Hungarian algorithm on cost = (1 - mask IoU) + |score difference| (the score term separates near-duplicate masks
of the same class, e.g. neighbouring grid cells); without scipy a greedy matching on the same cost is used.
"""
from __future__ import annotations

from typing import Any

import numpy as np

IOU_MIN = 0.999  # issue 2 acceptance
SCORE_TOL = 1e-3


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix [Na, Nb] of boolean masks a [Na, H, W], b [Nb, H, W]; two empty masks have IoU 1."""
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"mask sizes differ: {a.shape[1:]} vs {b.shape[1:]}")
    fa = a.reshape(len(a), -1).astype(np.float64)
    fb = b.reshape(len(b), -1).astype(np.float64)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return iou


def _assign(cost: np.ndarray) -> list[tuple[int, int]]:
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:  # greedy fallback
        pairs, used_r, used_c = [], set(), set()
        for flat in np.argsort(cost, axis=None):
            r, c = np.unravel_index(flat, cost.shape)
            if r not in used_r and c not in used_c:
                pairs.append((int(r), int(c)))
                used_r.add(r)
                used_c.add(c)
        return pairs
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols)]


def match_instances(ref_labels: np.ndarray, ref_scores: np.ndarray, ref_masks: np.ndarray,
                    labels: np.ndarray, scores: np.ndarray, masks: np.ndarray,
                    iou_min: float = IOU_MIN, score_tol: float = SCORE_TOL) -> dict[str, Any]:
    """Match ours (labels, scores, masks) to the reference; returns counts, the worst IoU / score difference and
    ``pass`` (same count, same label multiset, every instance matched within the thresholds)."""
    ref_labels, labels = np.asarray(ref_labels).astype(np.int64), np.asarray(labels).astype(np.int64)
    ref_scores, scores = np.asarray(ref_scores, np.float64), np.asarray(scores, np.float64)
    ref_masks, masks = np.asarray(ref_masks, bool), np.asarray(masks, bool)
    pairs: list[tuple[int, int]] = []
    ious, dscores = [], []
    for lab in sorted(set(ref_labels.tolist()) | set(labels.tolist())):
        ri, oi = np.nonzero(ref_labels == lab)[0], np.nonzero(labels == lab)[0]
        if len(ri) == 0 or len(oi) == 0:
            continue
        iou = mask_iou(ref_masks[ri], masks[oi])
        ds = np.abs(ref_scores[ri][:, None] - scores[oi][None, :])
        for r, c in _assign((1.0 - iou) + ds):
            pairs.append((int(ri[r]), int(oi[c])))
            ious.append(float(iou[r, c]))
            dscores.append(float(ds[r, c]))
    ious_a, ds_a = np.array(ious), np.array(dscores)
    good = (ious_a >= iou_min) & (ds_a <= score_tol)
    labels_equal = sorted(ref_labels.tolist()) == sorted(labels.tolist())
    n_ref, n_ours = len(ref_labels), len(labels)
    ok = labels_equal and n_ref == n_ours and len(pairs) == n_ref and bool(good.all())
    return {
        "pass": bool(ok),
        "count_official": n_ref, "count_ours": n_ours, "labels_equal": bool(labels_equal),
        "matched": int(good.sum()), "unmatched_official": n_ref - len(pairs), "unmatched_ours": n_ours - len(pairs),
        "min_iou": round(float(ious_a.min()), 6) if len(ious_a) else None,
        "max_abs_score_diff": float(ds_a.max()) if len(ds_a) else None,
        "num_below_iou": int((ious_a < iou_min).sum()), "num_over_score_tol": int((ds_a > score_tol).sum()),
        "pairs": pairs,
    }
