"""CPU build of MatrixNMS (liblapmask_kernels) against the float64 references (spec 6 step 7)."""
from __future__ import annotations

import pytest
import torch
from torch import Tensor

from lapmask.ops import matrix_nms, matrix_nms_reference


def _candidates(K: int, H: int, W: int, classes: int, seed: int, dup: float = 0.3) -> tuple[Tensor, Tensor, Tensor]:
    """Rectangles, a share of them jittered copies of earlier ones, so IoUs span 0..1; sorted scores."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(K, H, W)
    boxes = []
    for k in range(K):
        if boxes and torch.rand(1, generator=g).item() < dup:
            y0, x0, y1, x1 = boxes[int(torch.randint(len(boxes), (1,), generator=g))]
            j = torch.randint(-2, 3, (4,), generator=g).tolist()
            y0, x0 = max(0, y0 + j[0]), max(0, x0 + j[1])
            y1, x1 = min(H, max(y0 + 1, y1 + j[2])), min(W, max(x0 + 1, x1 + j[3]))
        else:
            y0, x0 = int(torch.randint(H - 1, (1,), generator=g)), int(torch.randint(W - 1, (1,), generator=g))
            y1 = int(torch.randint(y0 + 1, H + 1, (1,), generator=g))
            x1 = int(torch.randint(x0 + 1, W + 1, (1,), generator=g))
        boxes.append((y0, x0, y1, x1))
        masks[k, y0:y1, x0:x1] = 1
    scores = torch.sort(torch.rand(K, generator=g) * 0.9 + 0.1, descending=True).values
    labels = torch.randint(classes, (K,), generator=g, dtype=torch.int32)
    return masks, labels, scores


@pytest.mark.parametrize("K", [0, 1, 2, 7, 40])
@pytest.mark.parametrize("classes", [1, 3, 80])
@pytest.mark.parametrize("kernel,sigma", [("gaussian", 2.0), ("gaussian", 0.5), ("linear", 2.0)])
def test_matches_reference(clib, K, classes, kernel, sigma):
    masks, labels, scores = _candidates(K, 13, 17, classes, seed=K * 7 + classes, dup=0.4 if kernel != "linear" else 0)
    ref = matrix_nms_reference(masks, labels, scores, kernel, sigma)
    out = clib.matrix_nms(masks, labels, scores, kernel, sigma)
    assert out.shape == (K,) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=1e-6, atol=1e-7)


def test_ties_keep_input_order(clib):
    masks, labels, _ = _candidates(12, 10, 10, 1, seed=3, dup=0.6)
    scores = torch.tensor([0.9] * 4 + [0.5] * 8)
    ref = matrix_nms_reference(masks, labels, scores)
    torch.testing.assert_close(clib.matrix_nms(masks, labels, scores).double(), ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
def test_k500_matches_vectorised_path_in_float64(clib, kernel):
    masks, labels, scores = _candidates(500, 40, 56, 5, seed=500, dup=0.5 if kernel == "gaussian" else 0)
    ref = matrix_nms(masks, labels, scores.double(), kernel, 2.0)  # float64 math (promoted by the scores)
    out = clib.matrix_nms(masks, labels, scores, kernel)
    torch.testing.assert_close(out.double(), ref, rtol=1e-6, atol=1e-7)


def test_mask_storage_types_agree(clib):
    masks, labels, scores = _candidates(30, 9, 23, 2, seed=9)
    base = clib.matrix_nms(masks, labels, scores)
    for m in (masks.half(), masks.to(torch.uint8), masks.bool(), masks * 0.5, masks.reshape(30, -1)):
        assert torch.equal(clib.matrix_nms(m, labels, scores), base)


def test_invalid_entries_pass_through_and_do_not_decay_others(clib):
    masks, labels, scores = _candidates(20, 12, 12, 2, seed=4, dup=0.5)
    valid = torch.ones(20, dtype=torch.bool)
    valid[[3, 11, 19]] = False  # also in the middle: invalid entries are left out wherever they sit
    s = torch.where(valid, scores, torch.tensor(-1.0))
    out = clib.matrix_nms(masks, labels, s)
    assert torch.equal(out[~valid], torch.full((3,), -1.0))
    ref = matrix_nms_reference(masks[valid], labels[valid], scores[valid])
    torch.testing.assert_close(out[valid].double(), ref, rtol=1e-6, atol=1e-7)


def test_invalid_sorted_last_is_the_formula_on_all_k(clib):
    # What the static graph does (spec 10.6): invalid = -1 sorted last cannot change valid results.
    masks, labels, scores = _candidates(16, 10, 11, 1, seed=5, dup=0.5)
    s = scores.clone()
    s[12:] = -1.0
    ref = matrix_nms(masks, labels, s.double())
    out = clib.matrix_nms(masks, labels, s)
    torch.testing.assert_close(out[:12].double(), ref[:12], rtol=1e-6, atol=1e-7)


def test_empty_masks_have_iou_zero(clib):
    masks = torch.zeros(3, 4, 4)
    masks[2, 1:3, 1:3] = 1
    scores = torch.tensor([0.9, 0.8, 0.7])
    labels = torch.zeros(3, dtype=torch.int32)
    assert torch.equal(clib.matrix_nms(masks, labels, scores), scores)


def test_identical_masks_linear_follows_torch(clib):
    # c_i = 1 divides by zero in the linear kernel; the result follows the official torch code (nan propagates).
    masks = torch.ones(3, 5, 5)
    labels = torch.zeros(3, dtype=torch.int32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    ref = matrix_nms(masks, labels, scores, "linear")
    torch.testing.assert_close(clib.matrix_nms(masks, labels, scores, "linear"), ref, equal_nan=True)


def test_integer_kernel_codes(clib):
    masks, labels, scores = _candidates(10, 8, 8, 1, seed=6, dup=0.5)
    assert torch.equal(clib.matrix_nms(masks, labels, scores, 1), clib.matrix_nms(masks, labels, scores, "linear"))
    assert torch.equal(clib.matrix_nms(masks, labels, scores, 0), clib.matrix_nms(masks, labels, scores))
