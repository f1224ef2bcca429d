"""liblapmask_kernels refuses bad input with clear errors (never a crash), and loads lazily with fix-it messages."""
from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest
import torch

from lapmask.ops import matrix_nms


def _conv_args(dtype=torch.float32):
    x = torch.randn(1, 4, 6, 7, dtype=dtype)
    w = torch.randn(3, 4, 3, 3, dtype=dtype)
    off = torch.randn(1, 18, 6, 7, dtype=dtype)
    mask = torch.rand(1, 9, 6, 7, dtype=dtype)
    return x, w, off, mask


def _nms_args(k=5):
    return (torch.ones(k, 4, 4), torch.zeros(k, dtype=torch.int32), torch.linspace(0.9, 0.5, k))


@pytest.mark.parametrize("mutate,match", [
    (lambda a: (a[0].double(), *a[1:]), "dtype"),
    (lambda a: (a[0].int(), *a[1:]), "not supported"),
    (lambda a: (a[0], a[1].half(), *a[2:]), "dtype"),
    (lambda a: (a[0].transpose(2, 3), *a[1:]), r"contiguous|offset shape"),
    (lambda a: (a[0][..., ::2], *a[1:]), "contiguous"),
    (lambda a: (a[0], a[1], a[2][:, :16], a[3]), "offset shape"),
    (lambda a: (a[0], a[1], a[2], a[3][:, :, :5].contiguous()), "mask shape"),
    (lambda a: (a[0], a[1][:, :3].contiguous(), a[2], a[3]), "input channels"),
    (lambda a: (a[0][0], *a[1:]), "4 dimensions"),
    (lambda a: (a[0].numpy(), *a[1:]), "torch.Tensor"),
])
def test_deform_conv_rejects_bad_tensors(clib, mutate, match):
    with pytest.raises(ValueError, match=match):
        clib.deform_conv(*mutate(_conv_args()))


@pytest.mark.parametrize("kwargs,match", [
    ({"stride": 0}, "stride_h must be >= 1"),
    ({"dilation": (1, 0)}, "dilation_w must be >= 1"),
    ({"padding": -1}, "pad_top must be >= 0"),
    ({"padding": (1, 2, 3)}, "padding must be"),
    ({"stride": 1.5}, "stride must be"),
    ({"padding": "same"}, "padding must be"),
    ({"group": 3}, "group"),
    ({"offset_group": 0}, "offset_group"),
    ({"padding": 0, "dilation": 5}, "does not fit"),
])
def test_deform_conv_rejects_bad_attributes(clib, kwargs, match):
    with pytest.raises(ValueError, match=match):
        clib.deform_conv(*_conv_args(), **kwargs)


def test_deform_conv_rejects_bad_bias(clib):
    with pytest.raises(ValueError, match="bias has 2 entries"):
        clib.deform_conv(*_conv_args(), bias=torch.zeros(2))


@pytest.mark.parametrize("mutate,match", [
    (lambda m, l, s: (m, l.long(), s), "int32"),
    (lambda m, l, s: (m, l, s.double()), "float32"),
    (lambda m, l, s: (m.int(), l, s), "not supported"),
    (lambda m, l, s: (m.transpose(1, 2), l, s), "contiguous"),
    (lambda m, l, s: (m, l[:4], s), "expected"),
    (lambda m, l, s: (m, l, s[:4]), "1 dimensions|expected"),
    (lambda m, l, s: (m, l, s.view(5, 1)), "1 dimensions"),
])
def test_matrix_nms_rejects_bad_tensors(clib, mutate, match):
    with pytest.raises(ValueError, match=match):
        clib.matrix_nms(*mutate(*_nms_args()))


@pytest.mark.parametrize("kernel,sigma,match", [
    ("box", 2.0, "unknown Matrix NMS kernel"), (2, 2.0, "unknown Matrix NMS kernel code"),
    ("gaussian", -1.0, "sigma must be finite and >= 0"), ("gaussian", float("nan"), "sigma"),
])
def test_matrix_nms_rejects_bad_attributes(clib, kernel, sigma, match):
    with pytest.raises(ValueError, match=match):
        clib.matrix_nms(*_nms_args(), kernel=kernel, sigma=sigma)


def test_c_abi_checks_without_the_python_guards(clib):
    # Call the C entry points directly with nonsense: status 1 + a message, the process survives.
    lib = clib.load()
    desc = clib._DeformDesc()
    lib.lapmask_deform_conv_desc_init(ctypes.byref(desc))
    desc.batch, desc.channels, desc.height, desc.width, desc.out_channels = 1, 4, 6, 7, 3
    buf = torch.zeros(4096)
    p = buf.data_ptr()
    assert lib.lapmask_deform_conv_cpu(ctypes.byref(desc), 0, None, p, p, None, None, p) == 1
    assert b"x is NULL" in lib.lapmask_last_error()
    assert lib.lapmask_deform_conv_cpu(None, 0, p, p, p, None, None, p) == 1
    assert lib.lapmask_deform_conv_cpu(ctypes.byref(desc), 9, p, p, p, None, None, p) == 1
    assert b"dtype" in lib.lapmask_last_error()
    desc.height = desc.width = 1 << 40
    assert lib.lapmask_deform_conv_cpu(ctypes.byref(desc), 0, p, p, p, None, None, p) == 1
    assert b"too large" in lib.lapmask_last_error()
    assert lib.lapmask_matrix_nms_cpu(5, 16, 0, None, p, p, 0, 2.0, p) == 1
    assert b"masks is NULL" in lib.lapmask_last_error()
    assert lib.lapmask_matrix_nms_cpu(-1, 16, 0, p, p, p, 0, 2.0, p) == 1
    assert lib.lapmask_matrix_nms_cpu(5, 16, 4, p, p, p, 0, 2.0, p) == 1  # int32 masks
    assert lib.lapmask_matrix_nms_cpu(1 << 40, 1 << 30, 0, p, p, p, 0, 2.0, p) == 1
    assert lib.lapmask_matrix_nms_cpu(0, 16, 0, None, None, None, 0, 2.0, None) == 0  # K = 0 is fine
    assert lib.lapmask_last_error() == b""  # cleared by the successful call


def test_cuda_entry_points_say_how_to_get_them(clib):
    if clib.has_cuda():
        pytest.skip("this library has the CUDA kernels")
    lib = clib.load()
    size = ctypes.c_size_t()
    assert lib.lapmask_matrix_nms_cuda_workspace_size(5, 16, ctypes.byref(size)) == 4  # NOT_COMPILED
    assert b"--cuda on" in lib.lapmask_last_error()


def test_results_unchanged_after_errors(clib):
    m, l, s = _nms_args()
    before = clib.matrix_nms(m, l, s)
    with pytest.raises(ValueError):
        clib.matrix_nms(m, l.long(), s)
    assert torch.equal(clib.matrix_nms(m, l, s), before)
    torch.testing.assert_close(before, matrix_nms(m, l, s))


def test_missing_library_error_says_how_to_build(monkeypatch, tmp_path):
    from lapmask.ops import clib

    monkeypatch.delenv(clib.ENV_VAR, raising=False)
    monkeypatch.setattr(clib, "candidate_paths", lambda: [tmp_path / "liblapmask_kernels.so"])
    with pytest.raises(clib.KernelsNotAvailableError, match="python -m lapmask.ops.build_kernels"):
        clib.load()
    assert not clib.is_available()
    monkeypatch.setenv(clib.ENV_VAR, str(tmp_path / "nope.so"))
    with pytest.raises(clib.KernelsNotAvailableError, match=clib.ENV_VAR):
        clib.find_library()


def test_candidate_paths_order():
    from lapmask.ops import clib

    paths = clib.candidate_paths()
    assert paths[0] == clib.REPO_ROOT / "build" / "lib" / clib.library_filename()
    assert paths[-1].parent.name == "ops"


def test_import_lapmask_ops_does_not_load_the_library():
    code = "import sys, lapmask, lapmask.ops; assert 'lapmask.ops.clib' not in sys.modules, sys.modules.keys()"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_half_conversions_match_torch(clib):
    bits = torch.arange(-(1 << 15), 1 << 15, dtype=torch.int32).to(torch.int16)  # every fp16 bit pattern
    ref = bits.view(torch.float16).float()
    out = clib.half_bits_to_float(bits)
    assert torch.equal(out.isnan(), ref.isnan())
    assert torch.equal(out[~ref.isnan()], ref[~ref.isnan()])
    g = torch.Generator().manual_seed(0)
    vals = torch.cat([
        torch.randn(100000, generator=g) * 10.0 ** torch.randint(-9, 6, (100000,), generator=g).float(),
        ref[~ref.isnan()],  # exact halves stay exact
        (ref[~ref.isnan() & ~ref.isinf()].double() + 2.0 ** -30).float(),  # near halves
        torch.tensor([65504.0, 65519.99, 65520.0, 1e9, -1e9, 2.0 ** -25, 2.0 ** -24, 3 * 2.0 ** -26, 0.0, -0.0,
                      float("inf"), float("-inf")]),
    ])
    got = clib.float_to_half_bits(vals)
    want = vals.half().view(torch.int16)
    assert torch.equal(got, want), vals[got != want][:10]
    assert clib.float_to_half_bits(torch.tensor([float("nan")])).view(torch.float16).isnan().all()
