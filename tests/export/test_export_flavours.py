"""Flavour hooks against the readable references, and the TopK audit (fast, no model)."""
from __future__ import annotations

import pytest
import torch

from export.flavours import deformconv_filter, gridsample_filter, make_hooks, matrix_nms_graph, plugin_filter
from lapmask.ops import dynamic_deform_filter, matrix_nms, matrix_nms_reference, modulated_deform_conv_reference


def _nms_case(k: int = 14, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    masks = torch.rand((k, 12, 10), generator=g) > 0.55
    masks[5] = masks[2]  # identical pair
    masks[-1] = False  # an empty (invalid) candidate at the end
    labels = torch.randint(0, 3, (k,), generator=g)
    labels[5] = labels[2]
    scores = torch.sort(torch.rand(k, generator=g), descending=True).values
    return masks, labels, scores, masks.flatten(1).sum(1).float()


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
def test_matrix_nms_graph_matches_the_float64_reference(kernel):
    masks, labels, scores, areas = _nms_case()
    if kernel == "linear":  # (1 - D)/(1 - c) divides by 0 for an identical pair: drop it for the linear case
        masks, labels, scores, areas = (t[:5] for t in (masks, labels, scores, areas))
    got = matrix_nms_graph(masks, labels, scores, kernel, 2.0, areas)
    ref = matrix_nms_reference(masks[:-1] if kernel == "gaussian" else masks,
                               labels[:-1] if kernel == "gaussian" else labels,
                               scores[:-1] if kernel == "gaussian" else scores, kernel, 2.0)
    n = ref.shape[0]
    assert got.dtype == torch.float32
    torch.testing.assert_close(got[:n].double(), ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(got, matrix_nms(masks, labels, scores, kernel, 2.0, areas), rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown Matrix NMS kernel"):
        matrix_nms_graph(masks, labels, scores, "cosine", 2.0, areas)


def test_filters_agree_with_the_reference_dcn():
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(1, 6, 9, 11, generator=g)
    om = torch.randn(1, 27, 9, 11, generator=g) * 2
    kernels = torch.randn(5, 6 * 9, generator=g)
    ref = modulated_deform_conv_reference(feat.double(), kernels.double().view(5, 6, 3, 3), om[:, :18].double(),
                                          om[:, 18:].sigmoid().double())[0]
    for fn in (dynamic_deform_filter, gridsample_filter, deformconv_filter, plugin_filter):
        out = fn(feat, om, kernels)
        assert out.shape == (5, 9, 11) and out.dtype == torch.float32
        torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-4)
    half = deformconv_filter(feat.half(), om.half(), kernels.half())
    assert half.dtype == torch.float16  # runs in fp32 inside, returns the feature's dtype


def test_plugin_nms_hook_marks_invalid_and_matches_standard(lite):
    _, cfg = lite
    masks, labels, scores, areas = _nms_case()
    scores = scores.clone()
    scores[-3:] = -1.0
    _, plugin = make_hooks(cfg, "plugins")
    _, standard = make_hooks(cfg, "standard")
    p, s = plugin(masks, labels, scores, areas), standard(masks, labels, scores, areas)
    torch.testing.assert_close(p[:-3], s[:-3])
    assert (p[-3:] == -1).all()
    with pytest.raises(ValueError, match="unknown flavour"):
        make_hooks(cfg, "tensorrt")
    with pytest.raises(ValueError, match="unknown DCN form"):
        make_hooks(cfg, "standard", "im2col")


def test_topk_audit():
    from onnx import TensorProto as TP
    from onnx import helper

    from export.checks import topk_problems

    def model(k_source):
        nodes = [helper.make_node("TopK", ["x", "k"], ["v", "i"])]
        inits = []
        if k_source == "const":
            inits = [helper.make_tensor("k", TP.INT64, [1], [4000])]
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TP.FLOAT, [5000])] +
                              ([helper.make_tensor_value_info("k", TP.INT64, [1])] if k_source == "input" else []),
                              [helper.make_tensor_value_info("v", TP.FLOAT, None)], initializer=inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])

    assert "exceeds 3840" in topk_problems(model("const"))[0]
    assert "not a constant" in topk_problems(model("input"))[0]
