"""Losses (spec 5.3): dice and focal on hand-made inputs, and the batched mask path vs a per-pair float64 loop."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision

from lapmask.config import get_preset
from lapmask.model.loss import dice_loss, lapmask_loss, sigmoid_focal_loss, target_counts
from lapmask.model.targets import build_targets
from lapmask.ops import modulated_deform_conv_reference

_LITE = get_preset("lite_R18")
# The hand-computed cases below were worked out on these grids: pinned here, whatever the preset says.
CFG = _LITE.replace(head=dataclasses.replace(_LITE.head, num_grids=(40, 36, 24, 16, 12, 8)))  # 6 classes, NK = 16
K = CFG.head.num_classes
NK = CFG.head.num_kernels
# coarse grids keep the per-pair reference loop fast (few cells per object)
COARSE = CFG.replace(head=dataclasses.replace(CFG.head, num_grids=(10, 8, 6, 5, 4, 3)))


def _outputs(batch, canvas, dtype=torch.float64, seed=0, requires_grad=True, cfg=CFG):
    """Random tensors with the model output contract's shapes."""
    g = torch.Generator().manual_seed(seed)
    H, W = canvas

    def rnd(*shape, scale=1.0):
        t = (torch.randn(*shape, generator=g) * scale).to(dtype)
        return t.requires_grad_(requires_grad)

    return {
        "cate": [rnd(batch, K, s, s, scale=2.0) for s in cfg.head.num_grids],
        "kernel": [rnd(batch, 3, 9 * NK, s, s, scale=0.3) for s in cfg.head.num_grids],
        "mask_feats": [rnd(batch, NK, H // st, W // st) for st in (4, 8, 16)],
        "offsets": [rnd(batch, 27, H // st, W // st, scale=0.7) for st in (4, 8, 16)],
    }


def _gt(items, hw):
    masks = torch.zeros((len(items), *hw), dtype=torch.bool)
    for k, (_, _, (r0, r1, c0, c1)) in enumerate(items):
        masks[k, r0:r1 + 1, c0:c1 + 1] = True
    return {"boxes": torch.tensor([b for b, _, _ in items], dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor([lab for _, lab, _ in items], dtype=torch.int64), "masks": masks}


def _empty_gt(hw):
    return {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
            "masks": torch.zeros(0, *hw, dtype=torch.bool)}


# objects on levels 0..3 of lite_R18 (s = 6, 20, 40, 60), two of them sharing cells (same centre)
ITEMS_A = [((10, 10, 16, 16), 1, (10, 15, 10, 15)),
           ((30, 4, 50, 24), 2, (4, 23, 30, 49)),
           ((30, 4, 50, 24), 5, (9, 18, 35, 44)),
           ((0, 20, 40, 60), 0, (20, 59, 0, 39)),
           ((2, 2, 62, 62), 3, (2, 61, 2, 61))]
ITEMS_B = [((60, 10, 80, 30), 4, (10, 29, 60, 79)), ((5, 40, 45, 80), 2, (40, 79, 5, 44))]


# ---------------------------------------------------------------------------------------------------------------
# Slow references.

def _reference_loss(outputs, targets, cfg):
    """Per-pair loop: reference deformable conv for each pair and Laplacian level, explicit dice and focal."""
    dices = []
    for b, recs in enumerate(targets):
        for lvl, rec in enumerate(recs):
            S = cfg.head.num_grids[lvl]
            for p, cell in enumerate(rec["grid_order"].tolist()):
                y, x = divmod(cell, S)
                rs = []
                for k in range(3):
                    w = outputs["kernel"][lvl][b, k, :, y, x].reshape(1, NK, 3, 3)  # W[c, a, b] = v[9c + 3a + b]
                    o = outputs["offsets"][k][b:b + 1]
                    rs.append(modulated_deform_conv_reference(outputs["mask_feats"][k][b:b + 1], w, o[:, :18],
                                                              o[:, 18:].sigmoid())[0])  # [1, h, w]
                up = lambda t: F.interpolate(t.unsqueeze(0), scale_factor=2, mode="bilinear",  # noqa: E731
                                             align_corners=False)[0]
                m = rs[0] + up(rs[1] + up(rs[2]))
                prob = m.sigmoid()[0]
                t = rec["masks"][p].to(prob.dtype)
                dices.append(1 - 2 * (prob * t).sum() / ((prob ** 2).sum() + 0.001 + (t ** 2).sum() + 0.001))
    loss_ins = torch.stack(dices).mean() * cfg.loss.dice_weight
    total, num_pos = 0.0, 0
    a, gm = cfg.loss.focal_alpha, cfg.loss.focal_gamma
    for b, recs in enumerate(targets):
        for lvl, rec in enumerate(recs):
            x = outputs["cate"][lvl][b].double()  # [K, S, S]
            lab = rec["cate"]
            t = torch.stack([(lab == c) for c in range(K)]).double()
            p = x.sigmoid()
            total = total + (-(a * t * (1 - p) ** gm * torch.log(p))
                             - ((1 - a) * (1 - t) * p ** gm * torch.log(1 - p))).sum()
            num_pos += int(rec["positive"].sum())
    return loss_ins, cfg.loss.focal_weight * total / (num_pos + 1)


# ---------------------------------------------------------------------------------------------------------------
# Dice and focal on hand-made inputs.

def test_dice_hand_values():
    t = torch.zeros(2, 4, 4, dtype=torch.float64)
    t[:, :2] = 1  # 8 ones out of 16
    # perfect prediction: 1 - 16 / (8.001 + 8.001)
    assert dice_loss(t.clone(), t)[0].item() == pytest.approx(1 - 16 / 16.002, rel=1e-6)
    assert dice_loss(t.clone(), t)[0].item() < 2e-4
    # all-zero target -> exactly 1 whatever the prediction
    assert torch.equal(dice_loss(torch.rand(3, 4, 4), torch.zeros(3, 4, 4)), torch.ones(3))
    # p = 0.5 everywhere: a = 4, b = 16 * 0.25 + 0.001, c = 8 + 0.001 -> 1 - 8 / 12.002
    assert dice_loss(torch.full((1, 4, 4), 0.5), t[:1])[0].item() == pytest.approx(1 - 8 / 12.002, rel=1e-6)


def test_focal_hand_values():
    ln2 = math.log(2.0)
    x = torch.zeros(2)
    t = torch.tensor([1.0, 0.0])
    got = sigmoid_focal_loss(x, t, reduction="none")
    # p = 0.5: positive 0.25 * 0.5^2 * ln2, negative 0.75 * 0.5^2 * ln2
    assert got.tolist() == pytest.approx([0.0625 * ln2, 0.1875 * ln2], rel=1e-6)
    # a confident correct positive (logit 4): 0.25 * (1 - s)^2 * -log(s)
    s = 1 / (1 + math.exp(-4.0))
    assert sigmoid_focal_loss(torch.tensor([4.0]), torch.tensor([1.0])).item() == pytest.approx(
        0.25 * (1 - s) ** 2 * -math.log(s), rel=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        sigmoid_focal_loss(x, t, reduction="avg")


def test_focal_matches_formula_and_torchvision():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(50, 7, generator=g) * 3
    t = (torch.rand(50, 7, generator=g) > 0.8).float()
    p = x.double().sigmoid()
    td = t.double()
    formula = (-(0.25 * td * (1 - p) ** 2 * p.log()) - (0.75 * (1 - td) * p ** 2 * (1 - p).log())).sum()
    got = sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0, reduction="sum")
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(formula.item(), rel=1e-5)
    tv = torchvision.ops.sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0, reduction="sum")
    assert got.item() == pytest.approx(tv.item(), rel=1e-6)
    # float64 inputs still give a float32 loss (fvcore casts, spec 5.3a)
    assert sigmoid_focal_loss(x.double(), t.double()).dtype == torch.float32


# ---------------------------------------------------------------------------------------------------------------
# The batch loss.

def _targets(items_per_image, canvas, cfg=CFG):
    return [build_targets(_gt(items, canvas) if items else _empty_gt(canvas), canvas, cfg)
            for items in items_per_image]


def test_loss_matches_per_pair_reference_float64():
    canvas = (64, 64)
    targets = _targets([ITEMS_A, ITEMS_A[1:3]], canvas, COARSE)
    counts = target_counts(targets)
    assert counts["num_pairs"][0] > counts["num_positive"][0]  # duplicates from the shared cells
    out = _outputs(2, canvas, cfg=COARSE)
    got = lapmask_loss(out, targets, COARSE)
    ref_ins, ref_cate = _reference_loss(out, targets, COARSE)
    assert got["loss_ins"].dtype == torch.float64 and got["loss_cate"].dtype == torch.float32
    assert got["loss_ins"].item() == pytest.approx(ref_ins.item(), rel=1e-10)
    assert got["loss_cate"].item() == pytest.approx(ref_cate.item(), rel=1e-5)
    # gradients of the mask path equal the reference's (kernels, features, offsets)
    leaves = out["kernel"] + out["mask_feats"] + out["offsets"]
    g_fast = torch.autograd.grad(got["loss_ins"], leaves, allow_unused=True)
    g_ref = torch.autograd.grad(ref_ins, leaves, allow_unused=True)
    for a, b in zip(g_fast, g_ref):
        if b is None:
            assert a is None or a.abs().max() == 0
        else:
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_loss_batch_with_empty_image_and_rectangular_canvas():
    canvas = (96, 128)
    targets = _targets([[], ITEMS_B], canvas, COARSE)
    out = _outputs(2, canvas, seed=1, cfg=COARSE)
    got = lapmask_loss(out, targets, COARSE)
    ref_ins, ref_cate = _reference_loss(out, targets, COARSE)
    assert got["loss_ins"].item() == pytest.approx(ref_ins.item(), rel=1e-10)
    assert got["loss_cate"].item() == pytest.approx(ref_cate.item(), rel=1e-5)
    assert target_counts(targets)["num_pairs"][0] == 0


def test_gradient_reaches_kernels_features_offsets_and_cate():
    canvas = (64, 64)
    targets = _targets([ITEMS_A], canvas)
    out = _outputs(1, canvas, dtype=torch.float32)
    losses = lapmask_loss(out, targets, CFG)
    (losses["loss_ins"] + losses["loss_cate"]).backward()
    for k in range(3):
        assert out["mask_feats"][k].grad.abs().sum() > 0
        assert out["offsets"][k].grad.abs().sum() > 0
    used = [lvl for lvl, r in enumerate(targets[0]) if r["grid_order"].numel()]
    for lvl in range(6):
        gk = out["kernel"][lvl].grad
        if lvl in used:
            assert gk.abs().sum() > 0
            # only the kernels of paired cells get a gradient
            cells = set(targets[0][lvl]["grid_order"].tolist())
            nz = set(gk[0].abs().sum(dim=(0, 1)).flatten().nonzero().flatten().tolist())
            assert nz == cells
        else:
            assert gk is None or gk.abs().sum() == 0
        assert out["cate"][lvl].grad.abs().sum() > 0


def test_focal_normaliser_counts_unique_positive_cells():
    # all-zero logits: every element costs 0.1875 ln2 (negative) or 0.0625 ln2 (positive).
    canvas = (64, 64)
    targets = _targets([ITEMS_A], canvas)
    out = _outputs(1, canvas, dtype=torch.float32, requires_grad=False)
    out["cate"] = [torch.zeros_like(c) for c in out["cate"]]
    num_pos = sum(int(r["positive"].sum()) for r in targets[0])
    assert num_pos == sum(int((r["cate"] != K).sum()) for r in targets[0])
    cells = sum(s * s for s in CFG.head.num_grids)
    ln2 = math.log(2.0)
    expected = ((cells * K - num_pos) * 0.1875 * ln2 + num_pos * 0.0625 * ln2) / (num_pos + 1)
    assert lapmask_loss(out, targets, CFG)["loss_cate"].item() == pytest.approx(expected, rel=1e-5)


def test_tiny_object_dice_is_exactly_one():
    # 2x2 object whose stride-4 target is empty: its dice loss is exactly 1 (spec 5.3a), times dice_weight.
    canvas = (64, 64)
    targets = _targets([[((3, 3, 5, 5), 2, (3, 4, 3, 4))]], canvas)
    assert targets[0][0]["masks"].sum() == 0 and targets[0][0]["grid_order"].numel() > 0
    out = _outputs(1, canvas)
    assert lapmask_loss(out, targets, CFG)["loss_ins"].item() == pytest.approx(CFG.loss.dice_weight, abs=1e-12)


def test_no_positive_batch_returns_connected_zero():
    canvas = (64, 64)
    targets = _targets([[], []], canvas)
    out = _outputs(2, canvas, dtype=torch.float32)
    losses = lapmask_loss(out, targets, CFG)
    assert losses["loss_ins"].item() == 0.0 and losses["loss_ins"].requires_grad
    # focal normaliser is 0 + 1: plain sum over all cells x classes with all-zero targets
    flat = torch.cat([c.detach().permute(0, 2, 3, 1).reshape(-1, K) for c in out["cate"]])
    expected = torchvision.ops.sigmoid_focal_loss(flat, torch.zeros_like(flat), reduction="sum")
    assert losses["loss_cate"].item() == pytest.approx(expected.item(), rel=1e-5)
    (losses["loss_ins"] + losses["loss_cate"]).backward()
    for t in out["kernel"] + out["mask_feats"] + out["offsets"]:
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() == 0


def test_bad_input_raises():
    canvas = (64, 64)
    targets = _targets([ITEMS_A], canvas)
    out = _outputs(1, canvas, requires_grad=False)
    with pytest.raises(ValueError, match="target lists"):
        lapmask_loss(out, targets * 2, CFG)
    with pytest.raises(ValueError, match="F1 size"):
        lapmask_loss(_outputs(1, (96, 64), requires_grad=False), targets, CFG)
    with pytest.raises(ValueError, match="no 'offsets'"):
        lapmask_loss({k: v for k, v in out.items() if k != "offsets"}, targets, CFG)
    other = [build_targets(_gt(ITEMS_A, canvas), canvas, get_preset("R50_3x"))]  # 52x52 level-0 grid
    with pytest.raises(ValueError, match="grid 40x40"):
        lapmask_loss(out, other, CFG)
