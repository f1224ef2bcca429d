"""The CUDA sources compile (nvcc -c for one arch, ~2 s each) and the CMake build with CUDA on exports the CUDA
kernels (5 architectures, 15-40 s on 2 cores: under the 60 s that would make it a `slow` test)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lapmask.ops import build_kernels

KERNELS = build_kernels.REPO_ROOT / "trt_plugins" / "kernels"
CU_SOURCES = sorted(KERNELS.glob("*.cu"))
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")


def test_cuda_sources_exist():
    assert {p.name for p in CU_SOURCES} == {"deform_conv_cuda.cu", "matrix_nms_cuda.cu"}


@needs_nvcc
@pytest.mark.parametrize("source", CU_SOURCES, ids=lambda p: p.name)
def test_cu_compiles_with_nvcc(source: Path, tmp_path: Path):
    cmd = ["nvcc", "-std=c++17", "-O3", "-arch=sm_75", "-Xcompiler=-Wall", "-Werror=all-warnings",
           "-I", str(KERNELS), "-c", str(source), "-o", str(tmp_path / "k.o")]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "k.o").stat().st_size > 0


@needs_nvcc
def test_cmake_cuda_build_exports_cuda_kernels(tmp_path: Path):
    if build_kernels.missing_tools():
        pytest.skip(f"missing {build_kernels.missing_tools()}")
    lib = build_kernels.build(tmp_path / "build", cuda="on")
    nm = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True, check=True).stdout
    exported = {line.split()[-1] for line in nm.splitlines() if line.strip()}
    for sym in ("lapmask_deform_conv_cuda", "lapmask_deform_conv_cuda_workspace_size", "lapmask_matrix_nms_cuda",
                "lapmask_matrix_nms_cuda_workspace_size", "lapmask_deform_conv_cpu", "lapmask_matrix_nms_cpu"):
        assert sym in exported
    assert all(s.startswith("lapmask_") for s in exported), sorted(s for s in exported if not s.startswith("lapmask_"))
    sections = subprocess.run(["objdump", "-h", str(lib)], capture_output=True, text=True, check=True).stdout
    assert ".nv_fatbin" in sections, "no device code embedded"
    # The CUDA build still loads and computes on the CPU without a GPU, and reports that it has CUDA.
    code = (
        "import torch; from lapmask.ops import clib, modulated_deform_conv_reference as ref\n"
        "assert clib.has_cuda() and 'cuda(75,80,86,89,90)' in clib.build_info(), clib.build_info()\n"
        "x, w = torch.randn(1, 3, 5, 6, dtype=torch.float64), torch.randn(2, 3, 3, 3, dtype=torch.float64)\n"
        "o, m = torch.randn(1, 18, 5, 6, dtype=torch.float64), torch.rand(1, 9, 5, 6, dtype=torch.float64)\n"
        "torch.testing.assert_close(clib.deform_conv(x, w, o, m), ref(x, w, o, m))\n"
        "if not torch.cuda.is_available():  # a CUDA call without a GPU is a CUDA_ERROR status, not a crash\n"
        "    lib, p = clib.load(), x.data_ptr()\n"
        "    assert lib.lapmask_matrix_nms_cuda(5, 16, 0, p, p, p, 0, 2.0, p, p, 1 << 20, None) == 3\n"
        "    assert lib.lapmask_last_error().startswith(b'lapmask_matrix_nms_cuda: ')\n"
    )
    env = dict(os.environ, LAPMASK_KERNELS_LIB=str(lib))
    proc = subprocess.run([sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True,
                          cwd=build_kernels.REPO_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
