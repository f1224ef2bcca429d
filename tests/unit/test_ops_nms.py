"""Matrix NMS vs a plain double loop over the spec formula; point NMS vs a loop."""
import pytest
import torch

from lapmask.ops import matrix_nms, matrix_nms_reference, point_nms, point_nms_reference


def _case(k, classes, seed=0, hw=(12, 10)):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(max(1, k // 3 + 1), *hw, generator=g) > 0.5  # shared blobs -> real overlaps
    masks = base[torch.randint(0, base.shape[0], (k,), generator=g)] ^ (torch.rand(k, *hw, generator=g) > 0.85)
    labels = torch.randint(0, classes, (k,), generator=g)
    scores = torch.sort(torch.rand(k, generator=g), descending=True).values
    return masks, labels, scores


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
@pytest.mark.parametrize("k,classes", [(0, 1), (1, 1), (7, 1), (25, 3), (40, 80)])
def test_matches_double_loop(k, classes, kernel):
    masks, labels, scores = _case(k, classes)
    fast = matrix_nms(masks, labels, scores, kernel, 2.0)
    ref = matrix_nms_reference(masks, labels, scores, kernel, 2.0)
    assert fast.shape == (k,)
    assert torch.allclose(fast.double(), ref, atol=1e-6)


def test_ties_and_sigma_multiplies():
    m = torch.zeros(2, 4, 4, dtype=torch.bool)
    m[:, :2] = True
    m[1, :, :1] = True  # IoU = 8 / 10
    s = torch.tensor([0.9, 0.9])
    out = matrix_nms(m, torch.tensor([3, 3]), s, "gaussian", 2.0)
    assert out[0] == pytest.approx(0.9)
    assert out[1] == pytest.approx(0.9 * torch.exp(torch.tensor(-2.0 * 0.8 ** 2)).item(), rel=1e-6)  # not /sigma
    assert torch.allclose(matrix_nms(m, torch.tensor([3, 4]), s), s)  # different labels: no decay


def test_empty_masks_do_not_poison():
    m = torch.zeros(3, 4, 4, dtype=torch.bool)
    m[0, 0] = True
    out = matrix_nms(m, torch.zeros(3, dtype=torch.long), torch.tensor([0.9, -1.0, -1.0]))
    assert torch.isfinite(out).all() and out[0] == pytest.approx(0.9)


def test_k500():
    masks, labels, scores = _case(500, 5, seed=2, hw=(16, 16))
    fast = matrix_nms(masks, labels, scores)
    ref = matrix_nms_reference(masks[:60], labels[:60], scores[:60])  # the loop is O(K^3): check a prefix
    assert torch.allclose(fast[:60].double(), ref, atol=1e-6)  # decay of j depends on i < j only... and c_i
    assert (fast <= scores + 1e-7).all()


def test_point_nms_matches_loop():
    g = torch.Generator().manual_seed(0)
    h = torch.rand(2, 3, 7, 7, generator=g)
    h[0, 0, 3, 3] = h[0, 0, 2, 2] = h[0, 0, 2, 3] = 1.0  # ties survive
    assert torch.equal(point_nms(h), point_nms_reference(h))
    assert point_nms(h)[0, 0, 3, 3] == 1.0
