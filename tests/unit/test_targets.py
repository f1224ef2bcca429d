"""Training targets (spec 5.2, 5.3a): hand-computed cases and a slow, loop-by-loop reference."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from lapmask.config import get_preset
from lapmask.model.targets import build_targets, center_of_mass, stride4_targets

_LITE = get_preset("lite_R18")
# The hand-computed cases below were worked out on these grids: pinned here, whatever the preset says.
# Scale ranges (1,32) (16,64) (32,128) (64,256) ...
CFG = _LITE.replace(head=dataclasses.replace(_LITE.head, num_grids=(40, 36, 24, 16, 12, 8)))
BG = CFG.head.num_classes  # 6


def _gt(items, hw):
    """items: list of (box (x0, y0, x1, y1), label, (r0, r1, c0, c1) inclusive mask rectangle or None)."""
    h, w = hw
    masks = torch.zeros((len(items), h, w), dtype=torch.bool)
    for k, (_, _, rect) in enumerate(items):
        if rect is not None:
            r0, r1, c0, c1 = rect
            masks[k, r0:r1 + 1, c0:c1 + 1] = True
    return {
        "boxes": torch.tensor([b for b, _, _ in items], dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor([lab for _, lab, _ in items], dtype=torch.int64),
        "masks": masks,
    }


def _cells(rows, cols, S):
    return [i * S + j for i in rows for j in cols]


def _levels_of(records):
    return [lvl for lvl, r in enumerate(records) if r["grid_order"].numel()]


# ---------------------------------------------------------------------------------------------------------------
# Slow reference written like the official per-level / per-instance loops (0-dim tensor arithmetic, pad +
# F.interpolate(x0.25) for the mask targets, Python cell loops).

def _reference(gt, canvas_hw, cfg):
    boxes, labels, masks = gt["boxes"].float(), gt["labels"], gt["masks"]
    H, W = canvas_hw
    fh, fw = H // 4, W // 4
    areas = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    out = []
    for (lo, hi), S in zip(cfg.head.scale_ranges, cfg.head.num_grids):
        cate = torch.full((S, S), cfg.head.num_classes, dtype=torch.int64)
        pos = torch.zeros(S * S, dtype=torch.bool)
        order, tgts = [], []
        hit = ((areas >= lo) & (areas <= hi)).nonzero().flatten()
        if len(hit):
            bb, ll, mm = boxes[hit], labels[hit], masks[hit]
            hws = 0.5 * (bb[:, 2] - bb[:, 0]) * cfg.head.sigma
            hhs = 0.5 * (bb[:, 3] - bb[:, 1]) * cfg.head.sigma
            ys = torch.arange(mm.shape[1], dtype=torch.float32)
            xs = torch.arange(mm.shape[2], dtype=torch.float32)
            m00 = mm.sum(dim=(1, 2)).float()
            cws = (mm * xs).sum(-1).sum(-1) / m00.clamp(min=1e-6)
            chs = (mm * ys[:, None]).sum(-1).sum(-1) / m00.clamp(min=1e-6)
            padded = F.pad(mm.float(), (0, W - mm.shape[2], 0, H - mm.shape[1]))
            small = F.interpolate(padded.unsqueeze(0), scale_factor=0.25, mode="bilinear",
                                  align_corners=False).squeeze(0) != 0
            for k in range(len(hit)):
                if m00[k] == 0:
                    continue

                def g(v, size):
                    return int(torch.div(v / size, 1.0 / S))

                cw, ch = g(cws[k], W), g(chs[k], H)
                top = max(max(0, g(chs[k] - hhs[k], H)), ch - 1)
                down = min(min(S - 1, g(chs[k] + hhs[k], H)), ch + 1)
                left = max(cw - 1, max(0, g(cws[k] - hws[k], W)))
                right = min(min(S - 1, g(cws[k] + hws[k], W)), cw + 1)
                cate[top:down + 1, left:right + 1] = ll[k]
                for i in range(top, down + 1):
                    for j in range(left, right + 1):
                        pos[i * S + j] = True
                        order.append(i * S + j)
                        tgts.append(small[k].to(torch.uint8))
        out.append({"cate": cate, "positive": pos, "grid_order": torch.tensor(order, dtype=torch.int64),
                    "masks": torch.stack(tgts) if tgts else torch.zeros((0, fh, fw), dtype=torch.uint8)})
    return out


def _assert_same(records, ref):
    assert len(records) == len(ref) == 6
    for r, e in zip(records, ref):
        assert torch.equal(r["cate"], e["cate"])
        assert torch.equal(r["positive"], e["positive"])
        assert r["grid_order"].tolist() == e["grid_order"].tolist()
        assert r["masks"].dtype == torch.uint8
        assert torch.equal(r["masks"], e["masks"])


# ---------------------------------------------------------------------------------------------------------------
# Hand-computed cases.

def test_single_object_cells_hand_computed():
    # 10x10 square, rows 10..19, cols 20..29 on a 64x64 canvas; box (20, 10, 30, 20): s = 10 -> level 0 only.
    # centre (24.5, 14.5); half size 0.5*10*0.2 = 1. S=40: cx cell 24.5*40/64 = 15.31 -> 15, cy 9.06 -> 9;
    # left 23.5*0.625 = 14.69 -> 14, right 25.5*0.625 = 15.94 -> 15, top 13.5*0.625 = 8.44 -> 8, bottom 9.69 -> 9.
    recs = build_targets(_gt([((20, 10, 30, 20), 3, (10, 19, 20, 29))], (64, 64)), (64, 64), CFG)
    assert _levels_of(recs) == [0]
    r = recs[0]
    expected = [8 * 40 + 14, 8 * 40 + 15, 9 * 40 + 14, 9 * 40 + 15]
    assert r["grid_order"].tolist() == expected
    assert sorted(r["positive"].nonzero().flatten().tolist()) == expected
    cate = torch.full((40, 40), BG)
    cate[8:10, 14:16] = 3
    assert torch.equal(r["cate"], cate)
    assert r["masks"].shape == (4, 16, 16)
    assert r["instance"].tolist() == [0, 0, 0, 0]
    for lvl in range(1, 6):
        assert (recs[lvl]["cate"] == BG).all() and not recs[lvl]["positive"].any()
        assert recs[lvl]["masks"].shape == (0, 16, 16)


@pytest.mark.parametrize("side, levels", [
    (10, [0]),  # 1 <= 10 <= 32
    (16, [0, 1]),  # inclusive lower bound of level 1
    (20, [0, 1]),  # overlap of (1, 32) and (16, 64)
    (32, [0, 1, 2]),  # inclusive upper bound of level 0 and lower bound of level 2
    (48, [1, 2]),
    (100, [2, 3]),
    (200, [3, 4]),
    (300, [4, 5]),
    (600, [5]),
])
def test_scale_ranges_pick_levels(side, levels):
    canvas = (608, 608)
    box = (0, 0, side, side)  # s = side
    recs = build_targets(_gt([(box, 1, (0, min(side, 608) - 1, 0, min(side, 608) - 1))], canvas), canvas, CFG)
    assert _levels_of(recs) == levels


def test_scale_uses_box_not_mask():
    # A 4x4 mask with a 40x40 box: s = 40 -> levels 1 (16..64) and 2 (32..128), not level 0.
    recs = build_targets(_gt([((0, 0, 40, 40), 0, (20, 23, 20, 23))], (64, 64)), (64, 64), CFG)
    assert _levels_of(recs) == [1, 2]


def test_border_object_clipped_to_grid():
    # Mask rows/cols 62..63 (centre 62.5); box (44, 44, 64, 64): s = 20 -> levels 0 and 1; half size 2.
    # S=40: centre 62.5*0.625 = 39.06 -> 39; right/bottom 64.5*0.625 = 40.3 -> 40 -> clipped to 39;
    #       left/top 60.5*0.625 = 37.8 -> 37 -> clipped to 39 - 1 = 38.
    # S=36: centre 62.5*36/64 = 35.16 -> 35; right 64.5*0.5625 = 36.3 -> 36 -> 35; left 60.5*0.5625 = 34.03 -> 34.
    recs = build_targets(_gt([((44, 44, 64, 64), 2, (62, 63, 62, 63))], (64, 64)), (64, 64), CFG)
    assert _levels_of(recs) == [0, 1]
    assert recs[0]["grid_order"].tolist() == _cells([38, 39], [38, 39], 40)
    assert recs[1]["grid_order"].tolist() == _cells([34, 35], [34, 35], 36)
    assert recs[0]["cate"][39, 39] == 2 and recs[0]["cate"][37, 37] == BG


def test_top_left_corner_object():
    # 4x4 mask at the origin, box (0, 0, 4, 4): s = 4 -> level 0; centre 1.5, half size 0.4.
    # S=40: centre 1.5*0.625 = 0.94 -> 0; left 1.1*0.625 = 0.69 -> 0; right 1.9*0.625 = 1.19 -> 1.
    recs = build_targets(_gt([((0, 0, 4, 4), 5, (0, 3, 0, 3))], (64, 64)), (64, 64), CFG)
    assert _levels_of(recs) == [0]
    assert recs[0]["grid_order"].tolist() == _cells([0, 1], [0, 1], 40)
    assert (recs[0]["cate"][:2, :2] == 5).all()


def test_centre_region_clipped_to_3x3():
    # Full 64x64 mask and box: s = 64 -> levels 1, 2 and 3 (64 is level 3's inclusive lower bound);
    # centre 31.5, half size 6.4.
    # S=36: centre 31.5*0.5625 = 17.72 -> 17; region 25.1*0.5625 = 14.1 -> 14 .. 37.9*0.5625 = 21.3 -> 21,
    #       clipped to 16..18.  S=24: centre 11.81 -> 11; region 9..14 clipped to 10..12.
    # S=16: centre 7.875 -> 7; region 25.1/4 = 6.3 -> 6 .. 37.9/4 = 9.5 -> 9, clipped to 6..8.
    recs = build_targets(_gt([((0, 0, 64, 64), 1, (0, 63, 0, 63))], (64, 64)), (64, 64), CFG)
    assert _levels_of(recs) == [1, 2, 3]
    assert recs[1]["grid_order"].tolist() == _cells([16, 17, 18], [16, 17, 18], 36)
    assert recs[2]["grid_order"].tolist() == _cells([10, 11, 12], [10, 11, 12], 24)
    assert recs[3]["grid_order"].tolist() == _cells([6, 7, 8], [6, 7, 8], 16)


def test_centre_of_mass_not_box_centre():
    # L-shaped mask: the centre of mass differs from the box centre, and it decides the cell.
    m = torch.zeros(1, 64, 64, dtype=torch.bool)
    m[0, 0:4, 0:40] = True  # 160 px, mean row 1.5, mean col 19.5
    m[0, 4:40, 0:4] = True  # 144 px, mean row 21.5, mean col 1.5
    cx, cy = center_of_mass(m)
    assert cx.item() == pytest.approx((160 * 19.5 + 144 * 1.5) / 304, abs=1e-5)
    assert cy.item() == pytest.approx((160 * 1.5 + 144 * 21.5) / 304, abs=1e-5)
    # box (0, 0, 40, 40): s = 40 -> levels 1, 2. S=36: cx 10.974*0.5625 = 6.17 -> 6, cy 10.974 -> 6; half 4:
    # 6.97*0.5625 = 3.9 -> 3 (clipped to 5), 14.97*0.5625 = 8.4 -> 8 (clipped to 7).
    gt = {"boxes": torch.tensor([[0.0, 0, 40, 40]]), "labels": torch.tensor([0]), "masks": m}
    recs = build_targets(gt, (64, 64), CFG)
    assert recs[1]["grid_order"].tolist() == _cells([5, 6, 7], [5, 6, 7], 36)  # box centre would give 10..12


def test_two_objects_share_a_cell_later_label_wins_both_pairs_kept():
    # Same centre (24.5, 14.5), same level-0 cells; different masks (filled square vs its ring) and labels.
    ring = (10, 19, 20, 29)
    items = [((20, 10, 30, 20), 1, ring), ((20, 10, 30, 20), 4, (13, 16, 23, 26))]
    gt = _gt(items, (64, 64))
    gt["masks"][0, 13:17, 23:27] = False  # instance 0 becomes a ring with the same centre of mass
    recs = build_targets(gt, (64, 64), CFG)
    r = recs[0]
    cells = [8 * 40 + 14, 8 * 40 + 15, 9 * 40 + 14, 9 * 40 + 15]
    assert r["grid_order"].tolist() == cells + cells  # instance 0's pairs first, then instance 1's
    assert r["instance"].tolist() == [0] * 4 + [1] * 4
    assert (r["cate"][8:10, 14:16] == 4).all()  # the later label
    assert int(r["positive"].sum()) == 4  # unique cells
    t0, t1 = stride4_targets(gt["masks"], (64, 64))
    for p in range(4):
        assert torch.equal(r["masks"][p], t0) and torch.equal(r["masks"][4 + p], t1)
    assert not torch.equal(t0, t1)


def test_instance_order_is_input_order_not_area():
    # Three objects on level 0 at different places, the largest last: pairs follow the input order.
    items = [((40, 40, 46, 46), 0, (40, 45, 40, 45)), ((4, 4, 8, 8), 1, (4, 7, 4, 7)),
             ((10, 40, 22, 52), 2, (40, 51, 10, 21))]
    recs = build_targets(_gt(items, (64, 64)), (64, 64), CFG)
    owners = recs[0]["instance"].tolist()
    assert owners == sorted(owners) and set(owners) == {0, 1, 2}


def test_grid_cell_uses_padded_batch_canvas():
    # Same 64x64 image, alone (canvas 64x64) or batched with a bigger image (canvas 128x128).
    gt = _gt([((20, 10, 30, 20), 3, (10, 19, 20, 29))], (64, 64))
    small = build_targets(gt, (64, 64), CFG)[0]
    big = build_targets(gt, (128, 128), CFG)[0]
    assert small["grid_order"].tolist() == [334, 335, 374, 375]
    # canvas 128: centre 24.5*40/128 = 7.66 -> 7, 14.5*40/128 = 4.53 -> 4; left 23.5*0.3125 = 7.34 -> 7,
    # right 25.5*0.3125 = 7.97 -> 7, top 13.5*0.3125 = 4.22 -> 4, bottom 15.5*0.3125 = 4.84 -> 4: one cell.
    assert big["grid_order"].tolist() == [4 * 40 + 7]
    assert big["masks"].shape == (1, 32, 32)


def test_grid_cell_float32_truncation():
    # Centre column exactly 52 on a 160-wide canvas, S=40: exact arithmetic gives 52*40/160 = 13, but the
    # official float32 (52/160)/(1/40) on CPU is 12.999999 -> 12. Box (27, 0, 77, 20): half width 5, so the
    # region 47/4 = 11.75 -> 11 .. 57/4 = 14.25 -> 14 is clipped to 12 +- 1 = 11..13 (exact math: 12..14).
    # Rows: cy = 1.5 -> 0; region -0.31 -> 0 .. 2.19 -> 2, clipped to 0..1.
    recs = build_targets(_gt([((27, 0, 77, 20), 3, (0, 3, 51, 53))], (64, 160)), (64, 160), CFG)
    assert recs[0]["grid_order"].tolist() == _cells([0, 1], [11, 12, 13], 40)


def test_tiny_object_all_zero_target_but_positive():
    # 2x2 mask at rows/cols 3..4: no pixel is a centre pixel (4i+1, 4i+2) of a 4x4 block.
    recs = build_targets(_gt([((3, 3, 5, 5), 2, (3, 4, 3, 4))], (64, 64)), (64, 64), CFG)
    r = recs[0]
    assert r["grid_order"].numel() >= 1 and r["positive"].any()
    assert r["masks"].sum() == 0
    # moved by one pixel (rows/cols 4..5) it hits the centre pixel (5, 5) of block (1, 1)
    recs = build_targets(_gt([((4, 4, 6, 6), 2, (4, 5, 4, 5))], (64, 64)), (64, 64), CFG)
    assert recs[0]["masks"][0].nonzero().tolist() == [[1, 1]]


def test_empty_mask_and_out_of_range_are_skipped():
    items = [((0, 0, 10, 10), 1, None),  # empty mask
             ((0, 0, 0.5, 0.5), 1, (0, 0, 0, 0))]  # s = 0.5 < 1: no level
    recs = build_targets(_gt(items, (64, 64)), (64, 64), CFG)
    assert _levels_of(recs) == []
    assert all((r["cate"] == BG).all() for r in recs)


def test_no_instances():
    gt = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
          "masks": torch.zeros(0, 50, 60, dtype=torch.bool)}
    recs = build_targets(gt, (64, 64), CFG)
    assert [tuple(r["cate"].shape) for r in recs] == [(s, s) for s in CFG.head.num_grids]
    assert all(r["masks"].shape == (0, 16, 16) and r["grid_order"].dtype == torch.int64 for r in recs)


def test_stride4_target_is_or_of_centre_pixels():
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(3, 50, 61, generator=g) > 0.7
    canvas = (64, 96)
    got = stride4_targets(masks, canvas)
    assert got.shape == (3, 16, 24) and got.dtype == torch.uint8
    # explicit loop over 4x4 blocks of the zero-padded mask
    padded = torch.zeros(3, *canvas, dtype=torch.bool)
    padded[:, :50, :61] = masks
    expected = torch.zeros(3, 16, 24, dtype=torch.uint8)
    for n in range(3):
        for i in range(16):
            for j in range(24):
                block = padded[n, 4 * i + 1:4 * i + 3, 4 * j + 1:4 * j + 3]
                expected[n, i, j] = int(bool(block.any()))
    assert torch.equal(got, expected)
    # and the official formulation: pad, bilinear x0.25 (align_corners=False), non-zero
    official = F.interpolate(padded.float().unsqueeze(0), scale_factor=0.25, mode="bilinear",
                             align_corners=False).squeeze(0) != 0
    assert torch.equal(got.bool(), official)


def test_matches_official_style_reference_random_scenes():
    g = torch.Generator().manual_seed(1)
    for trial in range(6):
        h, w = [(60, 90), (64, 64), (100, 128), (33, 47), (128, 96), (90, 120)][trial]
        canvas = (((h + 31) // 32) * 32 + 32 * (trial % 2), ((w + 31) // 32) * 32)
        n = 12
        items = []
        for _ in range(n):
            x0 = float(torch.randint(0, w - 2, (1,), generator=g))
            y0 = float(torch.randint(0, h - 2, (1,), generator=g))
            x1 = x0 + 1 + float(torch.rand(1, generator=g)) * (w - x0 - 1)
            y1 = y0 + 1 + float(torch.rand(1, generator=g)) * (h - y0 - 1)
            items.append(((x0, y0, x1, y1), int(torch.randint(0, BG, (1,), generator=g)),
                          (int(y0), int(y1) - 1 if int(y1) > int(y0) else int(y0),
                           int(x0), int(x1) - 1 if int(x1) > int(x0) else int(x0))))
        gt = _gt(items, (h, w))
        gt["masks"] &= torch.rand(n, h, w, generator=g) > 0.3  # ragged masks, centroids off the box centre
        gt["masks"][0] = False  # one empty mask
        _assert_same(build_targets(gt, canvas, CFG), _reference(gt, canvas, CFG))


def test_default_preset_matches_reference():
    cfg = get_preset("R50_3x")
    g = torch.Generator().manual_seed(2)
    h, w = 200, 300
    items = [((10, 20, 60, 90), 5, (20, 89, 10, 59)), ((100, 30, 290, 190), 79, (30, 189, 100, 289)),
             ((150, 150, 153, 152), 0, (150, 151, 150, 152)), ((0, 0, 300, 200), 17, (0, 199, 0, 299))]
    gt = _gt(items, (h, w))
    gt["masks"] &= torch.rand(len(items), h, w, generator=g) > 0.2
    _assert_same(build_targets(gt, (224, 320), cfg), _reference(gt, (224, 320), cfg))


def test_bad_input_raises():
    gt = _gt([((0, 0, 10, 10), 1, (0, 9, 0, 9))], (64, 64))
    with pytest.raises(ValueError, match="multiples of 32"):
        build_targets(gt, (60, 64), CFG)
    with pytest.raises(ValueError, match="do not fit"):
        build_targets(gt, (32, 64), CFG)
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        build_targets({**gt, "labels": torch.tensor([6])}, (64, 64), CFG)
    with pytest.raises(ValueError, match="boxes"):
        build_targets({"labels": gt["labels"], "masks": gt["masks"]}, (64, 64), CFG)
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        build_targets({**gt, "boxes": torch.zeros(1, 5)}, (64, 64), CFG)
