"""COCO evaluator: ground truth fed back scores AP 1, nothing scores 0, results carry the dataset's own ids."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from lapmask.data.masks import encode_masks, mask_to_xywh, segmentation_to_bitmask
from lapmask.engine.evaluator import evaluate_segm, format_table, instances_to_results, to_json_safe

CAT_IDS = (4, 9, 17)  # non-contiguous on purpose
NAMES = ("alpha", "beta", "gamma")
H, W = 60, 80


def _gt() -> tuple[dict, dict[int, list[tuple[np.ndarray, int]]]]:
    """Three images; instances of all sizes; polygons and RLEs; one crowd region."""
    rng = np.random.default_rng(0)
    images, anns, truth = [], [], {}
    for iid in (3, 5, 8):
        images.append({"id": iid, "file_name": f"{iid}.png", "height": H, "width": W})
        truth[iid] = []
        for k in range(4):
            x0, y0 = int(rng.integers(0, 50)), int(rng.integers(0, 30))
            w, h = int(rng.integers(3, 30)), int(rng.integers(3, 30))
            m = np.zeros((H, W), bool)
            m[y0:y0 + h, x0:x0 + w] = True
            label = (iid + k) % 3
            if k % 2:
                segm = encode_masks(m[None])[0]
            else:
                segm = [[x0, y0, x0 + w, y0, x0 + w, y0 + h, x0, y0 + h]]
            m = segmentation_to_bitmask(segm, H, W)
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": CAT_IDS[label], "segmentation": segm,
                         "area": float(m.sum()), "bbox": mask_to_xywh(m), "iscrowd": 0})
            truth[iid].append((m, label))
    crowd = np.zeros((H, W), bool)
    crowd[50:58, 60:78] = True
    anns.append({"id": 99, "image_id": 3, "category_id": CAT_IDS[0], "segmentation": encode_masks(crowd[None])[0],
                 "area": float(crowd.sum()), "bbox": mask_to_xywh(crowd), "iscrowd": 1})
    cats = [{"id": c, "name": n} for c, n in zip(CAT_IDS, NAMES)]
    return {"images": images, "annotations": anns, "categories": cats}, truth


def _results(truth, shift=0):
    res = []
    for iid, inst in truth.items():
        masks = np.stack([np.roll(m, shift, axis=1) for m, _ in inst])
        res += instances_to_results(iid, masks, np.ones(len(inst)), [lab for _, lab in inst], CAT_IDS)
    return res


def test_ground_truth_as_predictions_scores_one():
    gt, truth = _gt()
    m = evaluate_segm(gt, _results(truth))
    for task in ("segm", "bbox"):
        assert m[task]["AP"] == pytest.approx(1.0)
        assert m[task]["AP50"] == pytest.approx(1.0) and m[task]["AP75"] == pytest.approx(1.0)
    assert m["segm"]["APs"] == pytest.approx(1.0)  # all instances are COCO-small ...
    assert math.isnan(m["segm"]["APl"])  # ... so there is no large ground truth: NaN, as pycocotools' -1
    assert set(m["per_class"]) == set(NAMES)
    assert all(v == pytest.approx(1.0) for v in m["per_class"].values())


def test_imperfect_predictions_score_less():
    gt, truth = _gt()
    m = evaluate_segm(gt, _results(truth, shift=3))
    assert 0.0 < m["segm"]["AP"] < 0.9


def test_empty_predictions_score_zero():
    gt, _ = _gt()
    m = evaluate_segm(gt, [])
    for task in ("segm", "bbox"):
        assert m[task]["AP"] == 0.0 and m[task]["AP50"] == 0.0
    assert all(v == 0.0 for v in m["per_class"].values())


def test_results_carry_original_category_ids():
    masks = np.zeros((2, 10, 12), bool)
    masks[0, 2:5, 3:9] = True
    masks[1, 7, 11] = True
    res = instances_to_results(5, masks, [0.9, 0.4], [2, 0], CAT_IDS)
    assert [r["category_id"] for r in res] == [17, 4]
    assert res[0]["bbox"] == [3.0, 2.0, 6.0, 3.0]  # w = x_max - x_min + 1
    assert res[1]["bbox"] == [11.0, 7.0, 1.0, 1.0]
    assert isinstance(res[0]["segmentation"]["counts"], str)
    assert np.array_equal(segmentation_to_bitmask(res[0]["segmentation"], 10, 12), masks[0])
    assert res[0]["image_id"] == 5 and res[0]["score"] == pytest.approx(0.9)
    with pytest.raises(ValueError, match="labels"):
        instances_to_results(5, masks, [0.9, 0.4], [3, 0], CAT_IDS)


def test_contiguous_labels_instead_of_ids_are_rejected():
    gt, truth = _gt()
    res = _results(truth)
    for r in res:
        r["category_id"] = CAT_IDS.index(r["category_id"])  # 0..2: not the dataset's ids
    with pytest.raises(ValueError, match="original category ids"):
        evaluate_segm(gt, res)


def test_unknown_image_and_subset():
    gt, truth = _gt()
    bad = _results(truth)[:1]
    bad[0]["image_id"] = 1234
    with pytest.raises(ValueError, match="image ids"):
        evaluate_segm(gt, bad)
    only3 = [r for r in _results(truth) if r["image_id"] == 3]
    assert evaluate_segm(gt, only3)["segm"]["AP"] < 1.0
    assert evaluate_segm(gt, only3, image_ids=[3])["segm"]["AP"] == pytest.approx(1.0)


def test_gt_file_path_and_missing_area(tmp_path):
    import json
    gt, truth = _gt()
    for a in gt["annotations"]:
        del a["area"]
        a.pop("iscrowd")
    p = tmp_path / "gt.json"
    p.write_text(json.dumps(gt))
    m = evaluate_segm(p, _results(truth))
    # area is recomputed; without "iscrowd" the crowd region is an ordinary, unpredicted alpha instance
    assert m["per_class"]["alpha"] < 1.0
    assert m["per_class"]["beta"] == pytest.approx(1.0) and m["per_class"]["gamma"] == pytest.approx(1.0)


def test_format_table_and_json_safe():
    gt, truth = _gt()
    m = evaluate_segm(gt, _results(truth))
    t = format_table(m)
    assert "| segm | 100.0 |" in t and "| bbox | 100.0 |" in t
    for n in NAMES:
        assert f"| {n} | 100.0 |" in t
    m["segm"]["APl"] = float("nan")
    assert to_json_safe(m)["segm"]["APl"] is None


def test_no_torch_import():
    code = "import sys, lapmask.engine.evaluator; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
