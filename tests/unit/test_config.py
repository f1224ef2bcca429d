"""Configs: presets mirror the official yamls; round trip; bad configs raise."""
import json

import pytest

from lapmask.config import PRESETS, LapMaskConfig, get_preset, load_config


@pytest.mark.parametrize("name", list(PRESETS))
def test_round_trip(name):
    cfg = get_preset(name)
    assert LapMaskConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_default_grid_cells():
    assert get_preset("R50_3x").num_cells == 6912  # spec 1.2
    assert get_preset("R101_DCN_3x").num_cells == 7712


def test_official_hyper_parameters():
    c = get_preset("R101_DCN_3x")
    assert c.backbone.deform_on_per_stage == (False, True, True, True)  # res3-5, spec 9.5
    assert (c.head.instance_channels, c.head.num_kernels, c.head.num_masks) == (768, 96, 96)
    assert c.input.min_size_train[0] == 576
    s = get_preset("R50_448_4x")
    assert (s.input.min_size_test, s.input.max_size_test, s.head.num_instance_convs) == (416, 608, 3)
    v = get_preset("V_57_3x")
    assert (v.backbone.p6, v.backbone.freeze_at, v.solver.steps) == ("conv", 0, (450_000, 510_000))
    r = get_preset("R50_3x")
    assert (r.inference.score_thr, r.inference.mask_thr, r.inference.maskness_thr) == (0.1, 0.55, 0.2)
    assert r.input.pixel_mean == (103.530, 116.280, 123.675) and r.input.format == "BGR"


def test_file_with_base(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"base": "lite_R18", "inference": {"score_thr": 0.3}}))
    cfg = load_config(str(p))
    assert cfg.inference.score_thr == 0.3 and cfg.head.num_masks == 16


def test_bad_configs():
    with pytest.raises(ValueError, match="unknown preset|neither a preset"):
        load_config("R999")
    with pytest.raises(ValueError, match="num_kernels"):
        LapMaskConfig.from_dict({"base": "R50_3x", "head": {"num_kernels": 32}})
    with pytest.raises(ValueError, match="unknown config keys"):
        LapMaskConfig.from_dict({"base": "R50_3x", "head": {"bogus": 1}})
