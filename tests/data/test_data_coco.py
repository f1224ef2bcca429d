"""COCO-format dataset: item format, categories, crowd/empty handling, broken records, mapping to bitmasks."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from lapmask.data.coco import BrokenRecordsWarning, CocoInstanceDataset, EmptyDatasetError, check_categories
from lapmask.data.masks import encode_masks


def _broken_warnings(record):
    return [w for w in record if issubclass(w.category, BrokenRecordsWarning)]


def test_item_format_and_categories(make_coco, h):
    p, root = make_coco([(1, 20, 30)], [h.ann(1, 1, 11, [h.rect_poly(2, 3, 12, 9)]),
                                        h.ann(2, 1, 3, [h.rect_poly(15, 5, 25, 15)])])
    ds = CocoInstanceDataset(p, root, is_train=False, min_sizes=None)
    assert ds.class_names == ("a", "b", "c") and ds.category_ids == (3, 7, 11)  # sorted by id
    item = ds[0]
    assert set(item) == {"image", "instances", "height", "width", "image_id", "file_name"}
    img = item["image"]
    assert img.dtype == torch.uint8 and img.shape == (3, 20, 30)
    # BGR: channel 0 of the tensor is the file's blue channel
    rgb = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(root / "img1.png"))
    assert np.array_equal(img.permute(1, 2, 0).numpy(), rgb[:, :, ::-1])
    inst = item["instances"]
    assert inst["boxes"].dtype == torch.float32 and inst["labels"].dtype == torch.int64
    assert inst["masks"].dtype == torch.bool and inst["masks"].shape == (2, 20, 30)
    assert inst["labels"].tolist() == [2, 0]  # id 11 -> label 2, id 3 -> label 0
    assert torch.allclose(inst["boxes"], torch.tensor([[2.0, 3, 12, 9], [15, 5, 25, 15]]))
    assert inst["masks"][0].sum() == 60 and inst["masks"][0, 3:9, 2:12].all()
    assert (item["height"], item["width"], item["image_id"]) == (20, 30, 1)
    assert item["file_name"].endswith("img1.png")
    with pytest.raises(ValueError, match="differ"):
        check_categories(ds, ("a", "b", "c"), (1, 2, 3))
    check_categories(ds, ("a", "b", "c"), (3, 7, 11))


def test_rle_compressed_uncompressed_and_polygon_masks(make_coco, h):
    m = np.zeros((16, 16), bool)
    m[4:10, 2:7] = True
    m[12, 12] = True
    comp = encode_masks(m[None])[0]
    flat = m.T.reshape(-1)
    counts, cur, run = [], False, 0
    for v in flat:
        if v == cur:
            run += 1
        else:
            counts.append(run)
            cur, run = v, 1
    counts.append(run)
    unc = {"size": [16, 16], "counts": counts}
    anns = [h.ann(1, 1, 3, comp, bbox=[2, 4, 11, 9]), h.ann(2, 1, 7, unc, bbox=[2, 4, 11, 9]),
            h.ann(3, 1, 11, [h.rect_poly(0, 0, 4, 4)])]
    p, root = make_coco([(1, 16, 16)], anns)
    item = CocoInstanceDataset(p, root, is_train=False, min_sizes=None)[0]
    masks = item["instances"]["masks"].numpy()
    assert np.array_equal(masks[0], m) and np.array_equal(masks[1], m)
    assert masks[2].sum() == 16 and masks[2][:4, :4].all()


def test_boxes_are_annotation_boxes_and_resized(make_coco, h):
    # bbox deliberately larger than the polygon: the box is the annotation's, not the mask's
    p, root = make_coco([(1, 20, 40)], [h.ann(1, 1, 3, [h.rect_poly(4, 4, 8, 8)], bbox=[2, 2, 10, 10])])
    ds = CocoInstanceDataset(p, root, is_train=False, min_sizes=40, max_size=1000)  # x2
    item = ds[0]
    assert item["image"].shape == (3, 40, 80)
    assert item["instances"]["boxes"].tolist() == [[4.0, 4.0, 24.0, 24.0]]
    m = item["instances"]["masks"][0]
    assert m.sum() == 64 and m[8:16, 8:16].all()  # polygon scaled, rasterised at the new size


def test_flip_is_consistent(make_coco, h):
    p, root = make_coco([(1, 24, 32)], [h.ann(1, 1, 3, [[3, 2, 13, 2, 3, 12]], bbox=[3, 2, 10, 10])])
    ds = CocoInstanceDataset(p, root, is_train=True, min_sizes=(24,), max_size=1000)
    seen = {}
    for s in range(40):
        item = ds[(0, s)]
        flipped = item["instances"]["boxes"][0, 0].item() > 16
        seen[flipped] = item
    assert set(seen) == {False, True}
    a, b = seen[False], seen[True]
    assert torch.equal(b["image"], a["image"].flip(-1))
    assert torch.equal(b["instances"]["masks"], a["instances"]["masks"].flip(-1))
    x0, y0, x1, y1 = a["instances"]["boxes"][0].tolist()
    assert b["instances"]["boxes"][0].tolist() == [32 - x1, y0, 32 - x0, y1]
    # same seed, same augmentation
    assert torch.equal(ds[(0, 3)]["image"], ds[(0, 3)]["image"])


def test_crowd_dropped_and_empty_images(make_coco, h):
    anns = [h.ann(1, 1, 3, [h.rect_poly(1, 1, 6, 6)]),
            h.ann(2, 1, 3, {"size": [10, 10], "counts": [0, 100]}, bbox=[0, 0, 10, 10], iscrowd=1),
            h.ann(3, 2, 3, {"size": [10, 10], "counts": [0, 100]}, bbox=[0, 0, 10, 10], iscrowd=1)]
    p, root = make_coco([(1, 10, 10), (2, 10, 10), (3, 10, 10)], anns)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        train = CocoInstanceDataset(p, root, is_train=True, min_sizes=(10,), max_size=100)
    assert not _broken_warnings(rec)  # crowd and empty images are not broken records
    assert train.image_ids == [1]  # 2 has only a crowd annotation, 3 has none (FILTER_EMPTY_ANNOTATIONS)
    assert train.report.num_images_without_annotations == 2 and train.report.num_crowd == 2
    assert len(train[(0, 0)]["instances"]["labels"]) == 1
    test = CocoInstanceDataset(p, root, is_train=False, min_sizes=None)
    assert test.image_ids == [1, 2, 3]
    assert test[1]["instances"]["masks"].shape == (0, 10, 10)
    assert test[1]["instances"]["boxes"].shape == (0, 4)


def test_broken_records_skipped_with_one_warning(make_coco, h):
    ok = [h.rect_poly(1, 1, 8, 8)]
    wrong_size_rle = encode_masks(np.ones((1, 5, 5), bool))[0]
    anns = [
        h.ann(1, 1, 3, ok),
        h.ann(101, 1, 3, [[1, 1, 5, 1]], bbox=[1, 1, 4, 4]),  # too few points
        h.ann(102, 1, 3, [[1, 1, 2, 2, 3, 3]]),  # zero area
        h.ann(103, 1, 99, ok),  # category not in the list
        h.ann(104, 1, 3, ok, bbox=[1, 1, -3, 4]),  # invalid bbox
        h.ann(105, 1, 3, ok, bbox=[1, 1, 3]),  # invalid bbox
        h.ann(106, 1, 3, wrong_size_rle, bbox=[0, 0, 5, 5]),  # RLE size != image size
        h.ann(107, 42, 3, ok),  # unknown image
        h.ann(108, 1, 3, [], bbox=[1, 1, 3, 3]),  # no segmentation
        h.ann(109, 2, 3, ok),  # image 2's file is missing
        h.ann(110, 1, 3, [[1, 1, 5, 1], h.rect_poly(2, 2, 6, 6)], bbox=[2, 2, 4, 4]),  # one bad part: kept
    ]
    p, root = make_coco([(1, 12, 12), (2, 12, 12)], anns, missing={2})
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ds = CocoInstanceDataset(p, root, is_train=False, min_sizes=None)
    msgs = [str(w.message) for w in _broken_warnings(rec)]
    assert len(msgs) == 1, msgs
    for i in range(101, 109):
        assert str(i) in msgs[0]
    assert "missing" in msgs[0] and "category" in msgs[0] and "bbox" in msgs[0] and "RLE" in msgs[0]
    assert ds.report.num_broken == 9  # 8 annotations + 1 image
    assert ds.report.num_invalid_polygon_parts >= 1
    assert ds.image_ids == [1]
    assert len(ds[0]["instances"]["labels"]) == 2  # annotations 1 and 110


def test_empty_dataset_error_says_why(make_coco, h):
    p, root = make_coco([(1, 10, 10)], [h.ann(1, 1, 99, [h.rect_poly(1, 1, 5, 5)])])
    with pytest.warns(BrokenRecordsWarning), pytest.raises(EmptyDatasetError, match="category.*dropped|no usable"):
        CocoInstanceDataset(p, root, is_train=True, min_sizes=(10,), max_size=100)
    p2, root2 = make_coco([(5, 10, 10)], [], missing={5}, name="b.json")
    with pytest.warns(BrokenRecordsWarning), pytest.raises(EmptyDatasetError, match="missing"):
        CocoInstanceDataset(p2, root2, is_train=False)
    p3, root3 = make_coco([(6, 10, 10)], [], categories=[], name="c.json")
    with pytest.raises(EmptyDatasetError, match="categories"):
        CocoInstanceDataset(p3, root3, is_train=False)


def test_corrupt_image_at_load_time(make_coco, h):
    anns = [h.ann(i, i, 3, [h.rect_poly(1, 1, 6, 6)]) for i in (1, 2, 3)]
    p, root = make_coco([(1, 10, 10), (2, 10, 10), (3, 10, 10)], anns, corrupt={2})
    ds = CocoInstanceDataset(p, root, is_train=True, min_sizes=(10,), max_size=100)
    assert len(ds) == 3  # only discovered when read
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        items = [ds[(1, s)] for s in range(5)]
    assert all(it is not None and it["image_id"] in (1, 3) for it in items)
    assert ds.num_load_failures == 5
    msgs = [str(w.message) for w in _broken_warnings(rec)]
    assert len(msgs) == 1 and "img2.png" in msgs[0]  # warned once per file
    test = CocoInstanceDataset(p, root, is_train=False, min_sizes=None)
    with pytest.warns(BrokenRecordsWarning):
        assert test[1] is None


def test_empty_instances_filtered(make_coco, h):
    # a box that is too thin after the transform and a polygon that rasterises to nothing (sub-pixel sliver)
    anns = [h.ann(1, 1, 3, [h.rect_poly(1, 1, 6, 6)]),
            h.ann(2, 1, 3, [h.rect_poly(1, 1, 6, 6)], bbox=[1, 1, 5, 1e-6]),
            h.ann(3, 1, 3, [[2.1, 2.1, 2.3, 2.1, 2.3, 2.3]], bbox=[2.1, 2.1, 0.2, 0.2])]
    p, root = make_coco([(1, 10, 10)], anns)
    item = CocoInstanceDataset(p, root, is_train=False, min_sizes=None)[0]
    assert len(item["instances"]["labels"]) == 1
    assert item["instances"]["boxes"].tolist() == [[1.0, 1.0, 6.0, 6.0]]


def test_from_config_sizes(make_coco, h):
    from lapmask.config import get_preset
    cfg = get_preset("lite_R18")
    p, root = make_coco([(1, 100, 200)], [h.ann(1, 1, 3, [h.rect_poly(10, 10, 50, 50)])])
    test = CocoInstanceDataset.from_config(cfg, p, root, is_train=False)
    assert test[0]["image"].shape == (3, 256, 512)
    native = CocoInstanceDataset.from_config(cfg, p, root, is_train=False, native_size=True)
    assert native[0]["image"].shape == (3, 100, 200)
    train = CocoInstanceDataset.from_config(cfg, p, root, is_train=True)
    assert cfg.input.min_size_train == (192, 224, 256) and cfg.input.max_size_train == 512
    shapes = {tuple(train[(0, s)]["image"].shape) for s in range(30)}
    assert shapes == {(3, 192, 384), (3, 224, 448), (3, 256, 512)}  # every choice drawn in 30 seeds
