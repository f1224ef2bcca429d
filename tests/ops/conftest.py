"""Session fixture that provides liblapmask_kernels for tests/ops: built once per session from the current sources.

Order: ``$LAPMASK_KERNELS_LIB`` as given (no build); otherwise an incremental CMake build (about 1 s when nothing
changed) into ``build/`` with CUDA when a GPU is present (the GPU tests need the CUDA kernels), or into the CPU-only
``build/pytest-cpu`` otherwise (no nvcc probe, ~10 s from scratch). Skips with a reason only when cmake or a C++
compiler is missing.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lapmask.ops import build_kernels


@pytest.fixture(scope="session")
def kernels_lib() -> Iterator[Path]:
    from lapmask.ops import clib

    env = os.environ.get(clib.ENV_VAR)
    if env:
        yield Path(env)
        return
    missing = build_kernels.missing_tools()
    if missing:
        pytest.skip(f"cannot build liblapmask_kernels: {', '.join(missing)} not on PATH")
    if torch.cuda.is_available():
        # "on" (not "auto") so that a build/ configured CPU-only earlier is switched to CUDA for the GPU tests.
        path = build_kernels.build(build_kernels.DEFAULT_BUILD_DIR, cuda="on" if shutil.which("nvcc") else "auto")
    else:
        path = build_kernels.build(build_kernels.DEFAULT_BUILD_DIR / "pytest-cpu", cuda="off")
    os.environ[clib.ENV_VAR] = str(path)
    try:
        yield path
    finally:
        os.environ.pop(clib.ENV_VAR, None)


@pytest.fixture()
def clib(kernels_lib: Path):
    """The binding module with the session's library loaded."""
    from lapmask.ops import clib as module

    module.load()
    return module
