"""TorchScript export: same static path and I/O as eager, at two sizes; loadable without torchvision or Python."""
from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from export_testlib import K_PRE, MAX_DETS, SIZES, deploy_inputs, smooth_image


@pytest.fixture(scope="module")
def scripted(exports):
    from export.torchscript import load_torchscript

    path = exports.torchscript()
    module, meta = load_torchscript(path)
    return path, module, meta


def test_torchscript_equals_eager_at_two_sizes(scripted, references):
    _, module, _ = scripted
    for hw in SIZES:
        (image, size), ref = references[hw]
        with torch.no_grad():
            got = [t.numpy() for t in module(image, size)]
        assert [g.dtype for g in got] == [np.int32, np.float32, np.int32, np.float32, np.int32]
        for r, g in zip(ref, got):
            np.testing.assert_allclose(g, r, rtol=0, atol=1e-5)
        assert int(got[0][0]) == MAX_DETS


def test_torchscript_graph_is_plain_aten(scripted):
    from export.torchscript import graph_problems

    _, module, meta = scripted
    assert graph_problems(module) == []
    kinds = {n.kind() for n in module.inlined_graph.nodes()}
    assert "aten::topk" in kinds and "aten::triu" in kinds  # the static path (TopK, Matrix NMS) is in the trace
    # the deformable sampling too: indexing (pixel method, the eager default) or grid_sampler
    assert kinds & {"aten::index", "aten::gather", "aten::grid_sampler"}
    assert meta["k_pre"] == K_PRE and meta["max_dets"] == MAX_DETS and meta["preset"] == "lite_R18"
    assert meta["opset"] is None and meta["flavour"] == "standard" and meta["precision"] == "fp32"


def test_torchscript_predictor_equals_pytorch_predictor(scripted, lite):
    from export.predictors import load_predictor
    from lapmask.inference import Predictor

    path, _, _ = scripted
    model, cfg = lite
    bgr = smooth_image(200, 260, seed=5)[0].permute(1, 2, 0).numpy().copy()
    got = load_predictor("torchscript", str(path))(bgr)
    ref = Predictor(model, cfg, static=True, k_pre=K_PRE, max_dets=MAX_DETS)(bgr)
    assert got["masks"].shape == ref["masks"].shape and got["masks"].shape[1:] == (200, 260)
    np.testing.assert_array_equal(got["labels"], ref["labels"])
    np.testing.assert_allclose(got["scores"], ref["scores"], atol=1e-6)
    assert (got["masks"] == ref["masks"]).mean() > 0.9999
    np.testing.assert_array_equal(got["boxes"], ref["boxes"])


def test_trace_rejects_python_ops():
    """graph_problems must flag what libtorch cannot load (a Python autograd function in the trace)."""
    from export.flavours import deformconv_filter
    from export.torchscript import graph_problems

    class M(torch.nn.Module):
        def forward(self, f, om, k):
            return deformconv_filter(f, om, k)

    args = (torch.randn(1, 4, 8, 8), torch.randn(1, 27, 8, 8), torch.randn(3, 36))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings from shape checks
        traced = torch.jit.trace(M(), args, check_trace=False)
    assert any(p.startswith("prim::PythonOp") for p in graph_problems(traced))


@pytest.mark.slow
def test_libtorch_cpp_loads_the_file(scripted, tmp_path):
    """Compile a 20-line C++ client against torch's bundled libtorch (C++20) and run the exported file."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not found")
    root = Path(torch.__file__).parent
    if not (root / "include" / "torch" / "script.h").is_file():
        pytest.skip("this torch wheel ships no C++ headers")
    path, _, _ = scripted
    exe = tmp_path / "load_lapmask"
    src = Path(__file__).parent / "cpp" / "load_lapmask.cpp"
    cmd = ["g++", "-std=c++20", "-O1", str(src), "-o", str(exe), f"-I{root / 'include'}",
           f"-I{root / 'include' / 'torch' / 'csrc' / 'api' / 'include'}", f"-L{root / 'lib'}", "-Wl,--no-as-needed",
           "-ltorch", "-ltorch_cpu", "-lc10", f"-Wl,-rpath,{root / 'lib'}"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    out = subprocess.run([str(exe), str(path)], check=True, capture_output=True, text=True, timeout=300).stdout
    assert f"[1] [1, {MAX_DETS}] [1, {MAX_DETS}] [1, {MAX_DETS}, 32, 24] [1]" in out
    assert "metadata bytes 0" not in out
    assert "torchvision" not in subprocess.run(["ldd", str(exe)], check=False, capture_output=True, text=True).stdout


def test_deploy_inputs_have_padding():
    image, size = deploy_inputs((64, 96), seed=0)
    h, w = (int(v) for v in size[0])
    assert image.shape[-2:] == (64, 96) and h < 64 and w < 96 and not image[:, :, h:].any()
