"""Pretrained bottom-up weights: MSRA caffe2 .pkl, torchvision .pth, detectron2-format files, and safety."""
from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from lapmask.config import get_preset
from lapmask.model.backbone import CheckpointFormatError, build_backbone, load_backbone_weights
from lapmask.model.backbone.pretrained import convert_c2_name, convert_torchvision_name

torchvision = pytest.importorskip("torchvision")


def _cfg(preset: str, **backbone: object):
    cfg = get_preset(preset)
    return cfg.replace(backbone=dataclasses.replace(cfg.backbone, **backbone)) if backbone else cfg


# ---------------------------------------------------------------------------------------------------------------
# caffe2 (MSRA) names

@pytest.mark.parametrize("c2,d2", [
    ("conv1_w", "stem.conv1.weight"),
    ("res_conv1_bn_s", "stem.conv1.norm.weight"),
    ("res_conv1_bn_b", "stem.conv1.norm.bias"),
    ("res2_0_branch1_w", "res2.0.shortcut.weight"),
    ("res2_0_branch1_bn_s", "res2.0.shortcut.norm.weight"),
    ("res2_0_branch2a_w", "res2.0.conv1.weight"),
    ("res4_22_branch2b_bn_b", "res4.22.conv2.norm.bias"),
    ("res5_2_branch2c_bn_s", "res5.2.conv3.norm.weight"),
    ("fc1000_w", "fc1000.weight"),
])
def test_convert_c2_name(c2: str, d2: str) -> None:
    assert convert_c2_name(c2) == d2


@pytest.mark.parametrize("tv,d2", [
    ("conv1.weight", "stem.conv1.weight"),
    ("bn1.running_var", "stem.conv1.norm.running_var"),
    ("layer1.0.conv2.weight", "res2.0.conv2.weight"),
    ("layer3.5.bn3.bias", "res4.5.conv3.norm.bias"),
    ("layer2.0.downsample.0.weight", "res3.0.shortcut.weight"),
    ("layer4.0.downsample.1.running_mean", "res5.0.shortcut.norm.running_mean"),
    ("fc.weight", "fc.weight"),
])
def test_convert_torchvision_name(tv: str, d2: str) -> None:
    assert convert_torchvision_name(tv) == d2


def _msra_blobs(depth_blocks: tuple[int, ...], bottleneck: bool, rng: np.random.Generator,
                stages: int = 4) -> dict[str, np.ndarray]:
    """caffe2 blob dict (MSRA naming) for the first ``stages`` stages; shapes of detectron2's ResNet."""
    blobs = {"conv1_w": rng.standard_normal((64, 3, 7, 7)).astype(np.float32),
             "res_conv1_bn_s": rng.uniform(0.5, 2, 64).astype(np.float32),
             "res_conv1_bn_b": rng.standard_normal(64).astype(np.float64)}  # float64 on purpose
    in_ch = 64
    for s in range(stages):
        width = 64 * 2 ** s
        out = width * 4 if bottleneck else width
        for b in range(depth_blocks[s]):
            p = f"res{s + 2}_{b}_"
            convs = ({"branch2a": (width, in_ch, 1), "branch2b": (width, width, 3), "branch2c": (out, width, 1)}
                     if bottleneck else {"branch2a": (out, in_ch, 3), "branch2b": (out, out, 3)})
            if in_ch != out:
                convs["branch1"] = (out, in_ch, 1)
            for name, (co, ci, k) in convs.items():
                blobs[p + name + "_w"] = rng.standard_normal((co, ci, k, k)).astype(np.float32)
                blobs[p + name + "_bn_s"] = rng.uniform(0.5, 2, co).astype(np.float32)
                blobs[p + name + "_bn_b"] = rng.standard_normal(co).astype(np.float32)
            in_ch = out
    return blobs


@pytest.mark.parametrize("wrap,protocol", [(False, 2), (True, 4)])
def test_msra_pkl_r50_loads_into_the_right_tensors(tmp_path: Path, wrap: bool, protocol: int) -> None:
    rng = np.random.default_rng(0)
    blobs = _msra_blobs((3, 4, 6, 3), True, rng)
    extra = {"fc1000_w": rng.standard_normal((1000, 2048)).astype(np.float32),
             "fc1000_b": np.zeros(1000, np.float32),
             "res2_0_branch2a_w_momentum": np.zeros((64, 64, 1, 1), np.float32)}
    path = tmp_path / "R-50.pkl"
    with open(path, "wb") as f:
        pickle.dump({"blobs": {**blobs, **extra}} if wrap else {**blobs, **extra}, f, protocol=protocol)
    m = build_backbone(get_preset("R50_3x"))
    report = load_backbone_weights(m, path, get_preset("R50_3x"))
    sd = m.bottom_up.state_dict()
    assert report["format"] == "caffe2"
    assert sorted(report["unexpected"]) == ["fc1000_b", "fc1000_w"]
    assert report["missing"] == []
    assert len(report["loaded"]) == len(blobs)
    for c2, d2 in [("conv1_w", "stem.conv1.weight"), ("res_conv1_bn_s", "stem.conv1.norm.weight"),
                   ("res_conv1_bn_b", "stem.conv1.norm.bias"), ("res2_0_branch2a_w", "res2.0.conv1.weight"),
                   ("res3_0_branch1_bn_b", "res3.0.shortcut.norm.bias"), ("res4_5_branch2b_w", "res4.5.conv2.weight"),
                   ("res5_2_branch2c_bn_s", "res5.2.conv3.norm.weight")]:
        torch.testing.assert_close(sd[d2], torch.from_numpy(blobs[c2]).float(), rtol=0, atol=0)
    # caffe2 folds BN into (s, b): statistics become the identity, as detectron2 does.
    assert "res4.5.conv2.norm.running_var" in report["defaulted"]
    assert torch.equal(sd["res4.5.conv2.norm.running_var"], torch.ones(256))
    assert torch.equal(sd["stem.conv1.norm.running_mean"], torch.zeros(64))
    assert sd["stem.conv1.norm.bias"].dtype == torch.float32


def test_msra_pkl_r18_subset_reports_missing(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    blobs = _msra_blobs((2, 2, 2, 2), False, rng, stages=2)  # stem, res2, res3 only
    path = tmp_path / "R-18-part.pkl"
    path.write_bytes(pickle.dumps(blobs, protocol=2))
    m = build_backbone(get_preset("lite_R18"))
    report = load_backbone_weights(m, path, get_preset("lite_R18"))
    sd = m.bottom_up.state_dict()
    torch.testing.assert_close(sd["res3.0.shortcut.weight"], torch.from_numpy(blobs["res3_0_branch1_w"]))
    torch.testing.assert_close(sd["res3.1.conv2.norm.weight"], torch.from_numpy(blobs["res3_1_branch2b_bn_s"]))
    assert report["unexpected"] == []
    assert len(report["loaded"]) == len(blobs)
    assert report["missing"] and all(k.startswith(("res4.", "res5.")) for k in report["missing"])


def test_caffe2_weights_into_vovnet_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "R-50.pkl"
    path.write_bytes(pickle.dumps(_msra_blobs((1, 1, 1, 1), True, np.random.default_rng(0), stages=1)))
    with pytest.raises(CheckpointFormatError, match="vovnet"):
        load_backbone_weights(build_backbone(get_preset("V_57_3x")), path, get_preset("V_57_3x"))


# ---------------------------------------------------------------------------------------------------------------
# torchvision

def _randomise_bn(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                n = mod.num_features
                mod.weight.copy_(torch.rand(n, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(n, generator=g) * 0.1)
                mod.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)


def _torchvision_features(tv: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    x = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))
    out = {}
    for k in (1, 2, 3, 4):
        x = getattr(tv, f"layer{k}")(x)
        out[f"res{k + 1}"] = x
    return out


@pytest.mark.parametrize("arch,preset", [("resnet18", "lite_R18"), ("resnet50", "R50_3x")])
def test_torchvision_weights_reproduce_torchvision_features(tmp_path: Path, arch: str, preset: str) -> None:
    torch.manual_seed(0)
    tv = getattr(torchvision.models, arch)(weights=None).eval()
    _randomise_bn(tv)
    path = tmp_path / f"{arch}.pth"
    torch.save(tv.state_dict(), path)
    cfg = _cfg(preset, stride_in_1x1=False)
    m = build_backbone(cfg).eval()
    report = load_backbone_weights(m, path, cfg)
    assert report["format"] == "torchvision"
    assert report["missing"] == [] and sorted(report["unexpected"]) == ["fc.bias", "fc.weight"]
    assert report["notes"]  # RGB / ImageNet normalisation advice
    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        ours, ref = m.bottom_up(x), _torchvision_features(tv, x)
    for k in ("res2", "res5"):
        torch.testing.assert_close(ours[k], ref[k], rtol=1e-4, atol=1e-4)


def test_torchvision_bottleneck_weights_need_stride_in_3x3(tmp_path: Path) -> None:
    path = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    with pytest.raises(CheckpointFormatError, match="stride_in_1x1=false"):
        load_backbone_weights(build_backbone(get_preset("R50_3x")), path, get_preset("R50_3x"))


def test_shape_mismatch_names_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    cfg = _cfg("R50_3x", stride_in_1x1=False)
    with pytest.raises(CheckpointFormatError, match=r"layer1\.0\.conv1\.weight"):
        load_backbone_weights(build_backbone(cfg), path, cfg)


# ---------------------------------------------------------------------------------------------------------------
# detectron2 format (e.g. vovnet57_ese_detectron2.pth)

def test_detectron2_format_vovnet(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = build_backbone(get_preset("V_57_3x"))
    with torch.no_grad():
        for v in src.bottom_up.state_dict().values():
            v.uniform_(0.5, 1.5)
    model = {"backbone." + k: v.clone() for k, v in src.state_dict().items()}
    model["ins_head.cate_pred.bias"] = torch.zeros(80)
    path = tmp_path / "vovnet57_ese_detectron2.pth"
    torch.save({"model": model, "iteration": 0}, path)
    dst = build_backbone(get_preset("V_57_3x"))
    report = load_backbone_weights(dst, path, get_preset("V_57_3x"))
    assert report["format"] == "detectron2" and report["missing"] == []
    assert len(report["loaded"]) == len(src.bottom_up.state_dict())
    assert all(k.startswith(("backbone.fpn_", "backbone.top_block.", "ins_head.")) for k in report["unexpected"])
    for k, v in src.bottom_up.state_dict().items():
        assert torch.equal(dst.bottom_up.state_dict()[k], v), k
    assert not torch.equal(dst.fpn_lateral2.weight, src.fpn_lateral2.weight)  # only the bottom-up is loaded


def test_detectron2_zoo_pkl_with_bare_names(tmp_path: Path) -> None:
    """``convert-torchvision-to-d2.py`` output: {"model": {"stem.conv1.weight": ndarray, ...}, "__author__": ...}."""
    src = build_backbone(get_preset("lite_R18")).bottom_up
    arrays = {k: np.random.default_rng(0).standard_normal(tuple(v.shape)).astype(np.float32)
              for k, v in src.state_dict().items()}
    arrays["stem.fc.weight"] = np.zeros((1000, 512), np.float32)
    path = tmp_path / "r18_d2.pkl"
    path.write_bytes(pickle.dumps({"model": arrays, "__author__": "torchvision", "matching_heuristics": True}))
    m = build_backbone(get_preset("lite_R18"))
    report = load_backbone_weights(m, path, get_preset("lite_R18"))
    assert report["missing"] == [] and report["unexpected"] == ["stem.fc.weight"]
    torch.testing.assert_close(m.bottom_up.res4[1].conv2.weight, torch.from_numpy(arrays["res4.1.conv2.weight"]))


# ---------------------------------------------------------------------------------------------------------------
# Safety and bad files

class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_never_executes_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"conv1_w": np.zeros((64, 3, 7, 7), np.float32), "x": _Evil(marker)}, protocol=2))
    with pytest.raises(CheckpointFormatError, match="refusing to unpickle the global '(posix|os)\\.system'"):
        load_backbone_weights(build_backbone(get_preset("lite_R18")), path, get_preset("lite_R18"))
    assert not marker.exists()
    # Sanity: the payload is real -- plain pickle.loads would have run it.
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_torch_zip_with_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "x": _Evil(marker)}, path)
    with pytest.raises(CheckpointFormatError, match="weights_only"):
        load_backbone_weights(build_backbone(get_preset("lite_R18")), path, get_preset("lite_R18"))
    assert not marker.exists()


@pytest.mark.parametrize("content,match", [
    (os.urandom(4096), "not a checkpoint"),
    (b"", "not a checkpoint"),
    (pickle.dumps([1, 2, 3]), "expected a dict"),
    (pickle.dumps({"foo": np.zeros(3, np.float32)}), "no tensor matches"),
    (pickle.dumps({"note": "hello"}), "no arrays"),
])
def test_bad_files_give_clear_errors(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "weights.pkl"
    path.write_bytes(content)
    with pytest.raises(CheckpointFormatError, match=match):
        load_backbone_weights(build_backbone(get_preset("lite_R18")), path, get_preset("lite_R18"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_backbone_weights(build_backbone(get_preset("lite_R18")), tmp_path / "nope.pth", get_preset("lite_R18"))
