"""Backbones + FPN: official keys/shapes, parameter counts, output shapes, FPN wiring, freezing, DCN, strides."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lapmask.config import BackboneConfig, LapMaskConfig, get_preset
from lapmask.model.backbone import FrozenBatchNorm2d, build_backbone
from lapmask.model.backbone.resnet import BottleneckBlock, DeformBottleneckBlock
from lapmask.ops import modulated_deform_conv_reference

KEYS_DIR = Path("/work/shared/design/official-keys")
OFFICIAL = ["R50_3x", "R101_3x", "R101_DCN_3x", "R50_448_4x", "R50_512_4x", "V_57_3x"]


def _cfg(preset: str, **backbone: object) -> LapMaskConfig:
    cfg = get_preset(preset)
    return cfg.replace(backbone=dataclasses.replace(cfg.backbone, **backbone)) if backbone else cfg


def _official_backbone_rows(preset: str) -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in (KEYS_DIR / f"keys_{preset}.tsv").read_text().splitlines():
        key, shape = line.split("\t")
        if key.startswith("backbone."):
            rows.append((key, tuple(int(s) for s in shape.strip("()").split(",") if s.strip())))
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Official state_dict keys, shapes, order (spec 8.1) and parameter counts (spec 8.3)

@pytest.mark.skipif(not KEYS_DIR.is_dir(), reason="official key tables not available")
@pytest.mark.parametrize("preset", OFFICIAL)
def test_state_dict_matches_official_keys(preset: str) -> None:
    official = _official_backbone_rows(preset)
    assert official, "tsv has backbone rows"
    ours = [("backbone." + k, tuple(v.shape)) for k, v in build_backbone(get_preset(preset)).state_dict().items()]
    assert set(ours) == set(official), (sorted(set(ours) - set(official))[:5], sorted(set(official) - set(ours))[:5])
    assert ours == official  # same order too
    assert not any(k.endswith("num_batches_tracked") for k, _ in ours)


# Whole-model minus heads counts from spec 8.3 (not measured from this code).
_BACKBONE_PARAMS = {
    "R50_3x": 56_545_761 - 29_746_465,
    "R101_3x": 75_485_665 - 29_746_465,
    "R101_DCN_3x": 108_641_355 - 60_972_897,
    "V_57_3x": 74_776_545 - 29_746_465,
    "R50_448_4x": 41_704_353 - 14_905_057,
}


@pytest.mark.parametrize("preset", list(_BACKBONE_PARAMS))
def test_parameter_counts(preset: str) -> None:
    m = build_backbone(get_preset(preset))
    fpn = sum(p.numel() for n, p in m.named_parameters() if not n.startswith("bottom_up."))
    assert fpn == (3_606_784 if preset == "V_57_3x" else 3_344_384)
    assert sum(p.numel() for p in m.parameters()) == _BACKBONE_PARAMS[preset]


def test_state_dict_elements_include_frozen_bn_buffers() -> None:
    # R50_3x state_dict elements 56,652,001 (spec 8.3) minus the heads' 29,746,465 parameters (no head buffers).
    m = build_backbone(get_preset("R50_3x"))
    assert sum(v.numel() for v in m.state_dict().values()) == 56_652_001 - 29_746_465
    norms = [mod for mod in m.modules() if isinstance(mod, FrozenBatchNorm2d)]
    assert norms and all(len(list(n.parameters())) == 0 for n in norms)


# ---------------------------------------------------------------------------------------------------------------
# Output shapes (spec 1.2)

def _expected(h: int, w: int) -> dict[str, tuple[int, int]]:
    sizes = {f"p{k}": (h // 2 ** k, w // 2 ** k) for k in (2, 3, 4, 5)}
    p5 = sizes["p5"]
    sizes["p6"] = ((p5[0] + 1) // 2, (p5[1] + 1) // 2)
    return sizes


@pytest.mark.parametrize("preset,hw,channels", [
    ("lite_R18", (800, 800), 128),
    ("R50_3x", (480, 640), 256),
    ("lite_R34", (64, 96), 128),
    ("V_57_3x", (96, 160), 256),
])
def test_output_shapes(preset: str, hw: tuple[int, int], channels: int) -> None:
    torch.manual_seed(0)
    m = build_backbone(get_preset(preset)).eval()
    assert m.size_divisibility == 32
    with torch.no_grad():
        out = m(torch.randn(1, 3, *hw))
    assert list(out) == ["p2", "p3", "p4", "p5", "p6"]
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (1, channels, *s) for k, s in _expected(*hw).items()}
    if hw == (800, 800):  # spec 1.2 table, literally
        assert [tuple(v.shape[-2:]) for v in out.values()] == [(200, 200), (100, 100), (50, 50), (25, 25), (13, 13)]
    if hw == (480, 640):
        assert tuple(out["p2"].shape[-2:]) == (120, 160) and tuple(out["p6"].shape[-2:]) == (8, 10)


def test_input_not_multiple_of_32_is_rejected() -> None:
    m = build_backbone(get_preset("lite_R18"))
    with pytest.raises(ValueError, match="multiple of 32"):
        m(torch.zeros(1, 3, 64, 80))


# ---------------------------------------------------------------------------------------------------------------
# FPN wiring against a hand-written top-down reference

def _reference_fpn(m: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    c = list(m.bottom_up(x).values())  # res2..res5 / stage2..stage5
    lat = [getattr(m, f"fpn_lateral{k}") for k in (2, 3, 4, 5)]
    outc = [getattr(m, f"fpn_output{k}") for k in (2, 3, 4, 5)]
    inner5 = lat[3](c[3])
    inner4 = lat[2](c[2]) + inner5.repeat_interleave(2, -1).repeat_interleave(2, -2)
    inner3 = lat[1](c[1]) + inner4.repeat_interleave(2, -1).repeat_interleave(2, -2)
    inner2 = lat[0](c[0]) + inner3.repeat_interleave(2, -1).repeat_interleave(2, -2)
    p = {"p2": outc[0](inner2), "p3": outc[1](inner3), "p4": outc[2](inner4), "p5": outc[3](inner5)}
    return p


def test_fpn_top_down_and_maxpool_p6() -> None:
    torch.manual_seed(0)
    m = build_backbone(get_preset("lite_R18")).eval()
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        out, ref = m(x), _reference_fpn(m, x)
    for k in ("p2", "p3", "p4", "p5"):
        torch.testing.assert_close(out[k], ref[k], rtol=1e-5, atol=1e-5)
    assert torch.equal(out["p6"], out["p5"][..., ::2, ::2])
    assert not any("top_block" in k for k in m.state_dict())


def test_conv_p6_is_a_stride2_conv_of_fpn_p5() -> None:
    torch.manual_seed(0)
    m = build_backbone(_cfg("lite_R18", p6="conv")).eval()
    assert tuple(m.top_block.p6.weight.shape) == (128, 128, 3, 3)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        out = m(x)
        ref = F.conv2d(out["p5"], m.top_block.p6.weight, m.top_block.p6.bias, stride=2, padding=1)
    torch.testing.assert_close(out["p6"], ref)
    assert tuple(out["p6"].shape[-2:]) == (2, 2)


# ---------------------------------------------------------------------------------------------------------------
# Freezing (detectron2 FREEZE_AT) and FrozenBN

def _trainable_prefixes(m: torch.nn.Module) -> dict[str, bool]:
    state: dict[str, set[bool]] = {}
    for n, p in m.named_parameters():
        part = n.split(".")[1] if n.startswith("bottom_up.") else "fpn"
        state.setdefault(part, set()).add(p.requires_grad)
    assert all(len(v) == 1 for v in state.values()), state
    return {k: v.pop() for k, v in state.items()}


def test_freeze_at_resnet() -> None:
    assert _trainable_prefixes(build_backbone(_cfg("R50_3x"))) == {
        "stem": False, "res2": False, "res3": True, "res4": True, "res5": True, "fpn": True}
    assert all(_trainable_prefixes(build_backbone(_cfg("lite_R18", freeze_at=0))).values())
    assert _trainable_prefixes(build_backbone(_cfg("lite_R18", freeze_at=5))) == {
        "stem": False, "res2": False, "res3": False, "res4": False, "res5": False, "fpn": True}


def test_freeze_at_vovnet_and_gradients() -> None:
    assert all(_trainable_prefixes(build_backbone(get_preset("V_57_3x"))).values())  # FREEZE_AT 0
    frozen = _trainable_prefixes(build_backbone(_cfg("V_57_3x", freeze_at=2)))
    assert frozen == {"stem": False, "stage2": False, "stage3": True, "stage4": True, "stage5": True, "fpn": True}
    # A backward pass leaves frozen weights without gradients and reaches the trainable ones.
    m = build_backbone(_cfg("lite_R18", freeze_at=2))
    sum(v.float().mean() for v in m(torch.randn(1, 3, 64, 64)).values()).backward()
    assert m.bottom_up.stem.conv1.weight.grad is None and m.bottom_up.res2[0].conv1.weight.grad is None
    assert m.bottom_up.res3[0].conv1.weight.grad is not None and m.fpn_output2.weight.grad is not None


def test_frozen_bn_matches_batchnorm_eval_on_both_paths() -> None:
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(8).eval()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 3)
    frozen = FrozenBatchNorm2d.convert(torch.nn.Sequential(bn))[0]
    assert isinstance(frozen, FrozenBatchNorm2d)
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(frozen(x), bn(x))  # no-grad path (F.batch_norm)
    xg = x.clone().requires_grad_(True)
    torch.testing.assert_close(frozen(xg), bn(x))  # affine path used when gradients flow
    ident = FrozenBatchNorm2d(8)
    torch.testing.assert_close(ident(x), x, rtol=0, atol=1e-6)  # default state is the identity


# ---------------------------------------------------------------------------------------------------------------
# Stride placement: stride_in_1x1, BasicBlock, DCN

@pytest.mark.parametrize("in_1x1", [True, False])
def test_stride_in_1x1_placement(in_1x1: bool) -> None:
    body = build_backbone(_cfg("R50_3x", stride_in_1x1=in_1x1)).bottom_up
    for stage in ("res3", "res4", "res5"):
        b0 = getattr(body, stage)[0]
        assert b0.conv1.stride == ((2, 2) if in_1x1 else (1, 1))
        assert b0.conv2.stride == ((1, 1) if in_1x1 else (2, 2))
        assert b0.shortcut.stride == (2, 2) and b0.conv3.stride == (1, 1)
        assert all(blk.conv1.stride == (1, 1) and blk.conv2.stride == (1, 1) for blk in getattr(body, stage)[1:])
    assert body.res2[0].conv1.stride == (1, 1) and body.res2[0].shortcut is not None
    assert body.res2[1].shortcut is None


def test_stride_in_1x1_changes_the_output() -> None:
    torch.manual_seed(0)
    a = build_backbone(_cfg("R50_3x", stride_in_1x1=True)).bottom_up.eval()
    b = build_backbone(_cfg("R50_3x", stride_in_1x1=False)).bottom_up.eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ya, yb = a(x)["res3"], b(x)["res3"]
    assert ya.shape == yb.shape and not torch.allclose(ya, yb)


def test_basic_block_layout() -> None:
    body = build_backbone(get_preset("lite_R18")).bottom_up
    assert [len(getattr(body, s)) for s in body.stage_names] == [2, 2, 2, 2]
    assert [len(getattr(build_backbone(get_preset("lite_R34")).bottom_up, s)) for s in body.stage_names] == [3, 4, 6, 3]
    b = body.res3[0]
    assert not hasattr(b, "conv3")
    assert b.conv1.kernel_size == (3, 3) and b.conv1.stride == (2, 2) and b.conv2.stride == (1, 1)
    assert b.shortcut.stride == (2, 2) and body.res2[0].shortcut is None  # 64 -> 64: identity
    assert body.out_channels == {"res2": 64, "res3": 128, "res4": 256, "res5": 512}
    # BasicBlock ignores stride_in_1x1 (its stride is always on the first 3x3 conv).
    assert build_backbone(_cfg("lite_R18", stride_in_1x1=False)).bottom_up.res3[0].conv1.stride == (2, 2)


def test_dcn_layout_and_init() -> None:
    body = build_backbone(get_preset("R101_DCN_3x")).bottom_up
    assert isinstance(body.res2[0], BottleneckBlock) and not isinstance(body.res2[0], DeformBottleneckBlock)
    for stage in ("res3", "res4", "res5"):
        assert all(isinstance(b, DeformBottleneckBlock) for b in getattr(body, stage))
    blk = body.res3[0]
    assert blk.conv2_offset.out_channels == 27 and blk.conv2_offset.bias is not None
    assert not blk.conv2_offset.weight.any() and not blk.conv2_offset.bias.any()
    assert blk.conv2_offset.stride == (1, 1) and blk.conv2.stride == 1  # stride in the 1x1


@pytest.mark.parametrize("in_1x1", [True, False])
def test_dcn_block_with_zero_offsets_is_half_a_plain_conv(in_1x1: bool) -> None:
    torch.manual_seed(0)
    dcn = DeformBottleneckBlock(32, 64, 16, stride=2, stride_in_1x1=in_1x1).eval()
    x = torch.randn(2, 32, 12, 10)
    h = F.relu(dcn.conv1(x))
    s = 1 if in_1x1 else 2
    with torch.no_grad():
        got = dcn._conv2(h)
        plain = dcn.conv2.norm(0.5 * F.conv2d(h, dcn.conv2.weight, stride=s, padding=1))  # sigmoid(0) = 0.5
    torch.testing.assert_close(got, plain, rtol=1e-5, atol=1e-5)
    # Whole block == an ordinary bottleneck whose 3x3 weight is halved.
    ref = BottleneckBlock(32, 64, 16, stride=2, stride_in_1x1=in_1x1).eval()
    sd = {k: v for k, v in dcn.state_dict().items() if not k.startswith("conv2_offset")}
    sd["conv2.weight"] = sd["conv2.weight"] * 0.5
    ref.load_state_dict(sd)
    with torch.no_grad():
        torch.testing.assert_close(dcn(x), ref(x), rtol=1e-5, atol=1e-5)


def test_dcn_offset_channel_layout() -> None:
    """Channels 0..17 of conv2_offset are (dy, dx) per tap (detectron2 chunk(3) + cat keeps them in order),
    18..26 are modulation logits. An offset of dy=+1 on every tap equals convolving the input moved up by one row."""
    torch.manual_seed(0)
    dcn = DeformBottleneckBlock(8, 32, 8, stride=1).eval()
    with torch.no_grad():
        dcn.conv2_offset.bias[0:18:2] = 1.0  # dy of every tap
        dcn.conv2_offset.bias[18:] = 2.0  # modulation sigmoid(2)
    h = torch.randn(1, 8, 7, 9)
    # out[y, x] = sum_ab W[a, b] h[y - 1 + a + 1, x - 1 + b]: pad 0 rows on top, 2 at the bottom, 1 left/right.
    shifted = F.pad(h, (1, 1, 0, 2))
    with torch.no_grad():
        got = dcn._conv2(h)
        want = dcn.conv2.norm(torch.sigmoid(torch.tensor(2.0)) * F.conv2d(shifted, dcn.conv2.weight))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # Random offsets: same as the float64 reference op fed with the documented split.
    with torch.no_grad():
        dcn.conv2_offset.weight.normal_(0, 0.1)
        om = dcn.conv2_offset(h)
        ref = modulated_deform_conv_reference(h.double(), dcn.conv2.weight.double(), om[:, :18].double(),
                                              om[:, 18:].sigmoid().double())
        torch.testing.assert_close(dcn._conv2(h).double(), dcn.conv2.norm(ref.float()).double(), rtol=1e-4,
                                   atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# Config errors

@pytest.mark.parametrize("bb,match", [
    (BackboneConfig(name="swin"), "unknown backbone.name"),
    (BackboneConfig(depth=77), "depth"),
    (BackboneConfig(depth=18), "res2_out_channels equal to backbone.stem_out_channels"),
    (BackboneConfig(depth=18, res2_out_channels=32), "stem_out_channels \\(64\\)"),
    (BackboneConfig(depth=18, res2_out_channels=64, deform_on_per_stage=(False, True, False, False)), "deform"),
    (BackboneConfig(p6="avgpool"), "maxpool"),
    (BackboneConfig(name="vovnet", depth=58), "VoVNet depth"),
])
def test_bad_configs_raise(bb: BackboneConfig, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_backbone(bb)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_stem_channels_last_pool_equals_nchw_pool(dtype) -> None:
    """The stem pools a channels-last copy on CPU; values and gradients equal the plain NCHW max-pool, with the
    ties a ReLU makes (zeros) included."""
    from lapmask.model.backbone.resnet import BasicStem

    torch.manual_seed(0)
    stem = BasicStem(3, 16).to(dtype)
    stem.conv1.norm.bias.fill_(-1.0)  # most pre-activations negative: many all-zero (tied) pooling windows
    x = torch.randn(2, 3, 32, 40, dtype=dtype)
    a = x.clone().requires_grad_()
    b = x.clone().requires_grad_()
    out = stem(a)
    ref = F.max_pool2d(F.relu(stem.conv1(b)), kernel_size=3, stride=2, padding=1)
    assert out.is_contiguous() and torch.equal(out, ref)
    assert (ref == 0).float().mean() > 0.2  # plenty of windows whose maximum is a tie of zeros
    g = torch.randn_like(out)
    out.backward(g)
    ref.backward(g)
    assert torch.equal(a.grad, b.grad)


def test_narrow_basicblock_resnet() -> None:
    """stem_out_channels = res2_out_channels = 32 halves every stage of a BasicBlock ResNet (the lite width
    option); res2 still has no projection shortcut, later stages get one, and the strides are unchanged."""
    from lapmask.model.backbone.resnet import ResNet

    net = ResNet(depth=18, freeze_at=0, res2_out_channels=32, stem_out_channels=32)
    assert net.out_channels == {"res2": 32, "res3": 64, "res4": 128, "res5": 256}
    assert net.res2[0].shortcut is None and net.res3[0].shortcut is not None
    out = net(torch.randn(1, 3, 64, 96))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"res2": (1, 32, 16, 24), "res3": (1, 64, 8, 12),
                                                          "res4": (1, 128, 4, 6), "res5": (1, 256, 2, 3)}
    full = ResNet(depth=18, freeze_at=0, res2_out_channels=64)
    assert sum(p.numel() for p in full.parameters()) > 3.5 * sum(p.numel() for p in net.parameters())


def test_dcn_block_trains() -> None:
    """Gradients reach the deformable weight and the (zero-initialised) offset conv."""
    torch.manual_seed(0)
    dcn = DeformBottleneckBlock(16, 32, 8, stride=2, stride_in_1x1=False)
    dcn(torch.randn(2, 16, 10, 12)).square().mean().backward()
    assert dcn.conv2.weight.grad is not None and dcn.conv2.weight.grad.abs().sum() > 0
    assert dcn.conv2_offset.weight.grad is not None and dcn.conv2_offset.weight.grad.abs().sum() > 0
    assert dcn.conv2_offset.bias.grad[18:].abs().sum() > 0  # modulation logits


# ---------------------------------------------------------------------------------------------------------------
# Trainable norms (backbone.norm "BN" / "GN", for from-scratch training of the lite presets)

def _norm_kinds(module: torch.nn.Module, prefix: str) -> set[type]:
    return {type(m) for n, m in module.named_modules() if n.startswith(prefix) and
            isinstance(m, (FrozenBatchNorm2d, torch.nn.BatchNorm2d, torch.nn.GroupNorm))}


@pytest.mark.parametrize("kind,cls", [("BN", torch.nn.BatchNorm2d), ("GN", torch.nn.GroupNorm)])
def test_trainable_norms_replace_only_unfrozen_frozen_bn(kind: str, cls: type) -> None:
    m = build_backbone(_cfg("R50_3x", norm=kind))  # FREEZE_AT 2: stem and res2 keep FrozenBN
    for frozen in ("bottom_up.stem", "bottom_up.res2"):
        assert _norm_kinds(m, frozen) == {FrozenBatchNorm2d}
    for trained in ("bottom_up.res3", "bottom_up.res4", "bottom_up.res5"):
        assert _norm_kinds(m, trained) == {cls}
    v = build_backbone(_cfg("V_57_3x", norm=kind, freeze_at=1))  # VoVNet: norm beside the conv in a Sequential
    assert _norm_kinds(v, "bottom_up.stem") == {FrozenBatchNorm2d}
    assert _norm_kinds(v, "bottom_up.stage2") == {cls}


def test_trainable_norms_keep_official_names_and_normalise() -> None:
    frozen = build_backbone(_cfg("lite_R18", norm="FrozenBN"))
    bn = build_backbone(_cfg("lite_R18", norm="BN"))
    extra = set(bn.state_dict()) - set(frozen.state_dict())
    assert extra and all(k.endswith("num_batches_tracked") for k in extra)
    assert set(frozen.state_dict()) <= set(bn.state_dict())
    # Training mode normalises with batch statistics: the stem output has zero mean per channel before ReLU.
    torch.manual_seed(0)
    x = 50 * torch.randn(4, 3, 64, 64) + 20
    stem = bn.bottom_up.stem.conv1
    pre = stem.norm(F.conv2d(x, stem.weight, stride=2, padding=3))
    torch.testing.assert_close(pre.mean(dim=(0, 2, 3)), torch.zeros(64), rtol=0, atol=1e-4)
    torch.testing.assert_close(pre.var(dim=(0, 2, 3), unbiased=False), torch.ones(64), rtol=0, atol=1e-2)
    with pytest.raises(ValueError, match="backbone.norm"):
        _cfg("lite_R18", norm="LayerNorm")
