"""The static deploy path (with each export flavour's hooks, eager) equals the official dynamic path
(``lapmask.inference.dynamic_single``) whenever num_candidates <= K_pre -- on the engineered model, whose many
overlapping same-class masks make Matrix NMS decay really matter.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from export_testlib import K_PRE, MAX_DETS, NONE_BIAS, SIZES, deploy_inputs, with_cate_bias


def _dynamic(model, image, size):
    """Official path on exactly the canvas the static path sees (same padding, same network outputs)."""
    from lapmask.inference import dynamic_single
    from lapmask.model.preprocess import normalize_and_pad

    h, w = (int(v) for v in size[0])
    cfg = model.cfg.replace(inference=model.cfg.inference.__class__(
        **{**model.cfg.inference.__dict__, "max_per_img": MAX_DETS}))
    batch, _ = normalize_and_pad([image[0, :, :h, :w]], model.pixel_mean, model.pixel_std, 32,
                                 canvas_hw=tuple(image.shape[-2:]))
    with torch.no_grad():
        r = dynamic_single(model(batch), 0, cfg)
    order = torch.argsort(r["scores"], descending=True)  # official output is unsorted when <= max_per_img
    return r["scores"][order].numpy(), r["labels"][order].numpy(), r["probs"][order].numpy()


def _static(model, image, size, flavour):
    from export.flavours import make_hooks
    from lapmask.inference.deploy_module import DeployLapMask

    hooks = {} if flavour is None else dict(zip(("filter_fn", "nms_fn"), make_hooks(model.cfg, *flavour)))
    with torch.no_grad():
        return [t.numpy() for t in DeployLapMask(model, K_PRE, MAX_DETS, **hooks).eval()(image, size)]


@pytest.fixture(scope="module")
def dynamic_results(lite):
    model, _ = lite
    return [_dynamic(model, *deploy_inputs(hw, seed=10 + i)) for i, hw in enumerate(SIZES)]


@pytest.mark.parametrize("flavour", [None, ("standard", "gridsample"), ("standard", "deformconv"),
                                     ("plugins", "gridsample")], ids=["default", "gridsample", "deformconv", "plugins"])
def test_static_equals_dynamic(lite, dynamic_results, flavour):
    model, _ = lite
    for i, hw in enumerate(SIZES):
        image, size = deploy_inputs(hw, seed=10 + i)
        num_dets, scores, labels, masks, num_cand = _static(model, image, size, flavour)
        assert 0 < int(num_cand[0]) <= K_PRE  # the condition under which the two must agree
        d_scores, d_labels, d_probs = dynamic_results[i]
        n = int(num_dets[0])
        assert n == len(d_scores) == MAX_DETS
        np.testing.assert_array_equal(labels[0, :n], d_labels)
        # default hooks: the same sampling arithmetic as the dynamic path; the export forms sample differently
        # (grid_sample normalised coordinates, ~1e-7 relative), which moves probabilities by ~1e-5
        tol = 1e-6 if flavour is None else 1e-4
        np.testing.assert_allclose(scores[0, :n], d_scores, rtol=0, atol=tol)
        np.testing.assert_allclose(masks[0, :n], d_probs, rtol=0, atol=tol)


def test_static_equals_dynamic_with_no_detections(lite):
    model = with_cate_bias(lite[0], NONE_BIAS)
    image, size = deploy_inputs(SIZES[0], seed=10)
    num_dets, scores, labels, masks, num_cand = _static(model, image, size, ("standard", "gridsample"))
    assert int(num_dets[0]) == int(num_cand[0]) == 0 == len(_dynamic(model, image, size)[0])
    assert (labels == -1).all() and not scores.any() and not masks.any()
