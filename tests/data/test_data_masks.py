"""Polygon / RLE helpers: validation, decoding (compressed and uncompressed), encoding, mask boxes."""
from __future__ import annotations

import numpy as np
import pytest

from lapmask.data.masks import (encode_masks, mask_to_xywh, polygon_area, polygons_to_bitmask, rle_area,
                                rle_problem, rle_to_bitmask, segmentation_to_bitmask, valid_polygon, valid_xywh)


def _uncompressed(mask: np.ndarray) -> dict:
    """Independent COCO uncompressed RLE: column-major runs starting with zeros."""
    flat = mask.T.reshape(-1).astype(np.uint8)
    counts, cur, run = [], 0, 0
    for v in flat:
        if v == cur:
            run += 1
        else:
            counts.append(run)
            cur, run = v, 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def test_polygon_rectangle_rasterises_to_its_pixels():
    m = polygons_to_bitmask([[1, 1, 5, 1, 5, 4, 1, 4]], 6, 7)
    expected = np.zeros((6, 7), bool)
    expected[1:4, 1:5] = True  # x in [1, 5), y in [1, 4): area 12 = the polygon's area
    assert np.array_equal(m, expected)
    assert polygon_area([1, 1, 5, 1, 5, 4, 1, 4]) == 12.0


def test_polygons_are_unioned():
    m = polygons_to_bitmask([[0, 0, 2, 0, 2, 2, 0, 2], [4, 4, 6, 4, 6, 6, 4, 6]], 6, 6)
    assert m.sum() == 8 and m[0, 0] and m[5, 5] and not m[3, 3]


def test_rle_compressed_and_uncompressed_decode():
    rng = np.random.default_rng(0)
    mask = rng.uniform(size=(9, 13)) > 0.6
    unc = _uncompressed(mask)
    assert rle_problem(unc, 9, 13) is None
    assert np.array_equal(rle_to_bitmask(unc), mask)
    comp = encode_masks(mask[None])[0]
    assert isinstance(comp["counts"], str)
    assert rle_problem(comp, 9, 13) is None
    assert np.array_equal(rle_to_bitmask(comp), mask)
    assert np.array_equal(segmentation_to_bitmask(comp, 9, 13), mask)
    assert rle_area(unc) == rle_area(comp) == mask.sum()
    comp_bytes = dict(comp, counts=comp["counts"].encode())
    assert np.array_equal(rle_to_bitmask(comp_bytes), mask)


@pytest.mark.parametrize("poly, ok", [
    ([0, 0, 4, 0, 0, 3], True),
    ([0, 0, 4, 0], False),  # 2 points
    ([0, 0, 4, 0, 0, 3, 1], False),  # odd length
    ([0, 0, 1, 1, 2, 2], False),  # collinear: zero area
    ([0, 0, 4, 0, float("nan"), 3], False),
    ("abc", False),
    ([0, 0, "x", 0, 0, 3], False),
])
def test_valid_polygon(poly, ok):
    assert valid_polygon(poly) is ok


def test_polygon_far_outside_the_image_is_invalid():
    assert valid_polygon([0, 0, 4, 0, 0, 3], 10, 10)
    assert valid_polygon([-2, 0, 12, 0, 0, 11], 10, 10)  # slight overshoot is normal in COCO
    assert not valid_polygon([0, 0, 1e30, 0, 0, 3], 10, 10)
    assert valid_polygon([0, 0, 1e30, 0, 0, 3])  # no bounds without an image size


def test_rle_problems_are_named():
    good = encode_masks(np.ones((1, 4, 5), bool))[0]
    assert rle_problem(good, 4, 5) is None
    assert "size" in rle_problem(good, 5, 4)
    assert "sum" in rle_problem({"size": [4, 5], "counts": [3, 4]}, 4, 5)
    assert "negative" in rle_problem({"size": [4, 5], "counts": [25, -5]}, 4, 5)
    assert rle_problem({"counts": "abc"}, 4, 5) is not None
    assert rle_problem({"size": [4, 5], "counts": 3.5}, 4, 5) is not None


def test_mask_box_is_inclusive_pixel_extent():
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    assert mask_to_xywh(m) == [3.0, 2.0, 6.0, 3.0]
    one = np.zeros((4, 4), bool)
    one[1, 2] = True
    assert mask_to_xywh(one) == [2.0, 1.0, 1.0, 1.0]
    assert mask_to_xywh(np.zeros((4, 4), bool)) == [0.0, 0.0, 0.0, 0.0]


def test_valid_xywh():
    assert valid_xywh([0, 0, 1, 1])
    for bad in ([0, 0, 0, 1], [0, 0, 1, -1], [0, 0, 1], [0, 0, float("inf"), 1], None, [0, 0, "a", 1]):
        assert not valid_xywh(bad)


def test_encode_masks_shapes():
    assert encode_masks(np.zeros((0, 3, 3), bool)) == []
    with pytest.raises(ValueError):
        encode_masks(np.zeros((3, 3), bool))
