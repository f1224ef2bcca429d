"""export.compare: instance matching and tolerances catch every kind of disagreement (numpy, synthetic outputs)."""
from __future__ import annotations

import numpy as np
import pytest

from export.compare import Tolerances, compare_raw, mask_iou_matrix, match_instances

THR = 0.55


def outputs(n: int = 4, k: int = 6, hw: tuple[int, int] = (16, 20), seed: int = 0) -> list[np.ndarray]:
    """Deploy outputs with n valid instances: disjoint rectangles of probability 0.9, descending scores."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((1, k, *hw), np.float32)
    for i in range(n):
        masks[0, i, 2 * i:2 * i + 3, 3 * i:3 * i + 4] = 0.9
    scores = np.zeros((1, k), np.float32)
    scores[0, :n] = np.sort(rng.uniform(0.2, 0.9, n))[::-1]
    labels = np.full((1, k), -1, np.int32)
    labels[0, :n] = rng.integers(0, 5, n)
    return [np.array([n], np.int32), scores, labels, masks, np.array([n + 3], np.int32)]


def copy(o):
    return [x.copy() for x in o]


def test_identical_outputs_pass():
    ref = outputs()
    rep = compare_raw(ref, copy(ref), THR)
    assert rep.ok and rep.images[0].matched == 4 and rep.images[0].min_mask_iou == 1.0


def test_reordered_instances_are_matched_by_mask():
    ref = outputs()
    got = copy(ref)
    perm = [1, 0, 2, 3, 4, 5]
    for i in (1, 2, 3):
        got[i][0] = got[i][0][perm]
    rep = compare_raw(ref, got, THR)
    assert rep.ok, rep.summary()


@pytest.mark.parametrize("break_it,needle", [
    (lambda g: g[1].__setitem__((0, 2), g[1][0, 2] + 1e-3), "score difference"),
    (lambda g: g[2].__setitem__((0, 1), (g[2][0, 1] + 1) % 5), "label agreement"),
    (lambda g: g[4].__setitem__(0, g[4][0] + 1), "num_candidates"),
    (lambda g: g[0].__setitem__(0, 3), "num_dets"),
    (lambda g: g[3][0, 0, 2:3].__setitem__(Ellipsis, 0.0), "mask IoU"),
    (lambda g: g[3][0, 3].__setitem__(Ellipsis, np.roll(g[3][0, 3], 7, axis=1)), "without a counterpart"),
    (lambda g: g[1].__setitem__((0, 0), np.nan), "NaN"),
])
def test_each_disagreement_is_reported(break_it, needle):
    ref = outputs()
    got = copy(ref)
    break_it(got)
    rep = compare_raw(ref, got, THR)
    assert not rep.ok and needle in rep.summary(), rep.summary()


def test_fp16_tolerances_accept_small_drift_only():
    ref = outputs()
    got = copy(ref)
    got[1][0, :4] += 5e-3
    assert not compare_raw(ref, got, THR).ok
    assert compare_raw(ref, got, THR, Tolerances.for_precision("fp16")).ok
    got[1][0, 0] += 0.1
    assert not compare_raw(ref, got, THR, Tolerances.for_precision("fp16")).ok


def test_shape_mismatch_and_empty():
    ref = outputs()
    rep = compare_raw(ref, outputs(k=7), THR)
    assert not rep.ok and "shapes differ" in rep.summary()
    empty = outputs(n=0)
    assert compare_raw(empty, copy(empty), THR).ok


def test_iou_matrix_and_greedy_matching():
    a = np.zeros((2, 4, 4), bool)
    a[0, :2] = True
    a[1, 2:] = True
    b = a[::-1].copy()
    iou = mask_iou_matrix(a, b)
    np.testing.assert_allclose(iou, [[0, 1], [1, 0]])
    assert match_instances(a, b, 0.5) == [(0, 1, 1.0), (1, 0, 1.0)]
    assert match_instances(a, np.zeros((0, 4, 4), bool), 0.5) == []
    assert mask_iou_matrix(np.zeros((1, 2, 2), bool), np.zeros((1, 2, 2), bool))[0, 0] == 0.0
