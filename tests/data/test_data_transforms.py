"""Transforms: detectron2's resize size rule, PIL bilinear/nearest, flip of coordinates and boxes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lapmask.data.transforms import (HFlipTransform, RandomHFlip, ResizeShortestEdge, ResizeTransform, TransformList,
                                     apply_augmentations, build_augmentation, get_output_shape, output_size)


@pytest.mark.parametrize("hw, short, max_size, expected", [
    ((480, 640), 800, 1333, (800, 1067)),  # 640 * 800/480 = 1066.67 -> 1067
    ((427, 640), 800, 1333, (800, 1199)),  # 1199.06 -> 1199
    ((640, 480), 800, 1333, (1067, 800)),  # portrait
    ((500, 2000), 800, 1333, (333, 1333)),  # long side capped: 800*1333/3200 = 333.25 -> 333
    ((256, 256), 320, 512, (320, 320)),
    ((2, 3), 3, 100, (3, 5)),  # 4.5 -> int(4.5 + 0.5) = 5 (not banker's rounding to 4)
    ((333, 500), 256, 512, (256, 384)),  # 384.38 -> 384
    ((100, 1000), 256, 512, (51, 512)),  # capped: 51.2 -> 51
])
def test_resize_size_rule(hw, short, max_size, expected):
    assert get_output_shape(*hw, short, max_size) == expected
    t = ResizeShortestEdge((short,), max_size).get_transform(*hw, np.random.default_rng(0))
    assert (t[0].new_h, t[0].new_w) == expected


def test_resize_uses_pil_bilinear_on_uint8():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    t = ResizeTransform(37, 53, 20, 29)
    out = t.apply_image(img)
    assert out.dtype == np.uint8 and out.shape == (20, 29, 3)
    # PIL's bilinear is what detectron2 uses for uint8 images ...
    assert np.array_equal(out, np.asarray(Image.fromarray(img).resize((29, 20), Image.BILINEAR)))
    # ... and it is NOT torch's non-antialiased bilinear (PIL widens the filter support when downscaling)
    ref = F.interpolate(torch.from_numpy(img).permute(2, 0, 1)[None].float(), (20, 29), mode="bilinear",
                        align_corners=False)[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
    assert not np.array_equal(out, ref)


def test_mask_resize_is_nearest_and_binary():
    m = np.zeros((10, 10), bool)
    m[2:7, 3:8] = True
    out = ResizeTransform(10, 10, 15, 15).apply_segmentation(m)
    assert out.dtype == bool and out.shape == (15, 15)
    assert np.array_equal(out, np.asarray(Image.fromarray(m.astype(np.uint8)).resize((15, 15), Image.NEAREST)) > 0)


def test_flip_coords_boxes_images():
    t = TransformList([ResizeTransform(10, 20, 20, 40), HFlipTransform(40)])
    boxes = t.apply_box(np.array([[2.0, 1.0, 5.0, 4.0]]))
    # resize x2, then x -> 40 - x: [4, 2, 10, 8] -> [30, 2, 36, 8]
    assert np.allclose(boxes, [[30, 2, 36, 8]])
    poly = t.apply_polygons([[2, 1, 5, 1, 5, 4]])[0]
    assert np.allclose(poly, [36, 2, 30, 2, 30, 8])
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    assert np.array_equal(HFlipTransform(3).apply_image(img), img[:, ::-1])
    m = np.zeros((2, 3), bool)
    m[0, 0] = True
    assert HFlipTransform(3).apply_segmentation(m)[0, 2]


def test_flip_probability_and_order():
    rng = np.random.default_rng(0)
    flips = sum(bool(RandomHFlip(0.5).get_transform(4, 4, rng)) for _ in range(2000))
    assert 900 < flips < 1100
    augs = build_augmentation((224, 256, 288, 320), 512, hflip=True)
    sizes = set()
    for s in range(200):
        tfm = apply_augmentations(augs, 300, 400, np.random.default_rng(s))
        sizes.add(output_size(tfm, 300, 400))
        flip = [t for t in tfm.transforms if isinstance(t, HFlipTransform)]
        if flip:  # the flip sees the resized width
            assert flip[0].width == output_size(tfm, 300, 400)[1]
    assert sizes == {get_output_shape(300, 400, s, 512) for s in (224, 256, 288, 320)}


def test_native_size_is_identity():
    augs = build_augmentation(None, None, hflip=False)
    tfm = apply_augmentations(augs, 31, 17, np.random.default_rng(0))
    assert tfm.transforms == []
    img = np.random.default_rng(0).integers(0, 256, (31, 17, 3), dtype=np.uint8)
    assert np.array_equal(tfm.apply_image(img), img)


def test_resize_rejects_wrong_input():
    with pytest.raises(ValueError):
        ResizeTransform(10, 10, 5, 5).apply_image(np.zeros((9, 10, 3), np.uint8))
    with pytest.raises(TypeError):
        ResizeTransform(10, 10, 5, 5).apply_image(np.zeros((10, 10, 3), np.float32))
