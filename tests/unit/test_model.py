"""Model structure: official keys, parameter counts, shapes, CoordConv values (spec 1.2, 3.1, 8)."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lapmask.config import PRESETS, get_preset
from lapmask.convert import expected_shapes
from lapmask.model.blocks import coord_feat
from lapmask.model.lapmask import build_model

KEYS = Path(__file__).resolve().parents[3] / "shared" / "design" / "official-keys"
OFFICIAL = ["R50_3x", "R101_3x", "R101_DCN_3x", "R50_448_4x", "R50_512_4x", "V_57_3x"]


def official_keys(name):
    rows = [line.split("\t") for line in (KEYS / f"keys_{name}.tsv").read_text().splitlines()]
    return [(k, tuple(int(x) for x in s.strip("()").split(",") if x.strip())) for k, s in rows]


@pytest.mark.skipif(not KEYS.is_dir(), reason="shared/design/official-keys not beside the checkout")
@pytest.mark.parametrize("name", OFFICIAL)
def test_state_dict_equals_official_key_list(name):
    assert list(expected_shapes(get_preset(name)).items()) == official_keys(name)


# Parameter counts of the instantiated original models (spec 8.3).
PARAMS = {"R50_3x": 56_545_761, "R101_3x": 75_485_665, "R101_DCN_3x": 108_641_355, "V_57_3x": 74_776_545,
          "R50_448_4x": 41_704_353, "R50_512_4x": 41_704_353}
HEADS = {"R50_3x": (26_347_280, 3_399_185), "R101_DCN_3x": (55_421_552, 5_551_345), "R50_448_4x": (12_814_256, 2_090_801)}


@pytest.mark.parametrize("name", list(PARAMS))
def test_parameter_counts(name):
    with torch.device("meta"):
        m = build_model(get_preset(name))
    assert sum(p.numel() for p in m.parameters()) == PARAMS[name]
    if name in HEADS:
        assert sum(p.numel() for p in m.ins_head.parameters()) == HEADS[name][0]
        assert sum(p.numel() for p in m.mask_head.parameters()) == HEADS[name][1]


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds(name):
    with torch.device("meta"):
        m = build_model(get_preset(name))
    assert len(m.state_dict()) > 100


def test_forward_shapes_lite():
    cfg = get_preset("lite_R18")
    m = build_model(cfg).eval()
    with torch.no_grad():
        out = m(torch.randn(1, 3, 480, 640))
    assert [tuple(c.shape) for c in out["cate"]] == [(1, 6, s, s) for s in cfg.head.num_grids]
    assert [tuple(k.shape) for k in out["kernel"]] == [(1, 3, 144, s, s) for s in cfg.head.num_grids]
    assert [tuple(f.shape) for f in out["mask_feats"]] == [(1, 16, 120, 160), (1, 16, 60, 80), (1, 16, 30, 40)]
    assert [tuple(o.shape) for o in out["offsets"]] == [(1, 27, 120, 160), (1, 27, 60, 80), (1, 27, 30, 40)]


def test_forward_rejects_unpadded():
    m = build_model(get_preset("lite_R18"))
    with pytest.raises(ValueError, match="multiples of 32"):
        m(torch.randn(1, 3, 100, 96))


def test_level5_coordconv_is_resized_ramp():
    # p5 of an 800x800 input is 25x25; the ramps resized to the 12x12 grid end at +-0.9549 (spec 3.1).
    x = torch.zeros(1, 1, 25, 25)
    r = F.interpolate(torch.cat([x, coord_feat(x)], 1), size=(12, 12), mode="bilinear", align_corners=False)
    xr, yr = r[0, 1], r[0, 2]
    assert math.isclose(float(xr[0, 0]), -0.9549, abs_tol=5e-5) and math.isclose(float(xr[0, -1]), 0.9549, abs_tol=5e-5)
    assert math.isclose(float(yr[-1, 0]), 0.9549, abs_tol=5e-5)
    assert torch.allclose(xr[0], xr[5])  # x varies along the width only


def test_r50_forward_800():
    """Spec 1.2 shapes for R50_3x on 1x3x800x800 (the real preset, once)."""
    cfg = get_preset("R50_3x")
    m = build_model(cfg).eval()
    with torch.no_grad():
        out = m(torch.randn(1, 3, 800, 800))
    assert [tuple(c.shape[-2:]) for c in out["cate"]] == [(s, s) for s in (52, 44, 36, 24, 16, 12)]
    assert out["kernel"][0].shape == (1, 3, 576, 52, 52)
    assert [tuple(f.shape) for f in out["mask_feats"]] == [(1, 64, 200, 200), (1, 64, 100, 100), (1, 64, 50, 50)]


def test_ins_head_batches_levels_of_equal_grid_exactly():
    """Levels sharing a grid size run through the towers as one batch; in float64 every level's outputs equal
    the per-level computation (``forward_level``) exactly, for a rectangular input and a batch of 2."""
    from lapmask.config import LapMaskConfig
    from lapmask.model.lapmask import INSTANCE_IN_FEATURES, split_feats

    torch.manual_seed(0)
    cfg = LapMaskConfig.from_dict({"base": "lite_R18", "head": {"num_grids": [16, 16, 12, 12, 12, 6]}})
    m = build_model(cfg).double().eval()
    for p in m.ins_head.parameters():  # away from the init (zero-mean std 0.01 convs, constant biases)
        p.data.add_(torch.randn_like(p) * 0.05)
    with torch.no_grad():
        f = m.backbone(torch.randn(2, 3, 96, 160, dtype=torch.float64))
        feats = split_feats([f[k] for k in INSTANCE_IN_FEATURES])
        cates, kernels = m.ins_head(feats)
        for i, s in enumerate(cfg.head.num_grids):
            c, ks = m.ins_head.forward_level(feats[i], s)
            assert cates[i].shape == (2, 6, s, s) and kernels[i].shape == (2, 3, 144, s, s)
            assert torch.equal(cates[i], c) and torch.equal(kernels[i], torch.stack(ks, dim=1))
        assert cates[0].abs().max() > 0 and not torch.equal(cates[0], cates[1])  # levels really differ


def test_tiny_preset_shapes_and_one_tower_pass():
    """tiny_R18 (the demo's preset): half-width ResNet-18, FPN 64, one grid size, so the instance head runs its
    towers once for the six levels; outputs keep the per-level layout of every other preset."""
    cfg = get_preset("tiny_R18")
    m = build_model(cfg).eval()
    assert m.backbone.bottom_up.out_channels == {"res2": 32, "res3": 64, "res4": 128, "res5": 256}
    calls = []
    m.ins_head.cate_pred.register_forward_hook(lambda mod, i, o: calls.append(tuple(o.shape)))
    with torch.no_grad():
        out = m(torch.randn(2, 3, 192, 256))
    assert calls == [(12, 6, 12, 12)]  # 6 levels x batch 2 in one pass
    assert [tuple(c.shape) for c in out["cate"]] == [(2, 6, 12, 12)] * 6
    assert [tuple(k.shape) for k in out["kernel"]] == [(2, 3, 144, 12, 12)] * 6
    assert [tuple(f.shape) for f in out["mask_feats"]] == [(2, 16, 48, 64), (2, 16, 24, 32), (2, 16, 12, 16)]
    assert expected_shapes(cfg) != expected_shapes(get_preset("lite_R18"))
