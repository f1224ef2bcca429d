"""Fixtures for the TensorRT tests. The CMake build of the plugin library + harness is done once per session
(skipped with the reason when cmake, nvcc or the TensorRT headers are missing)."""
from __future__ import annotations

import pytest
from trt_testlib import build_skip_reason, cmake_build


@pytest.fixture(scope="session")
def plugin_build(tmp_path_factory):
    """{"lib", "manifest", "harness": {...}, "log", "seconds"} of a fresh build in a temporary folder."""
    reason = build_skip_reason()
    if reason:
        pytest.skip(reason)
    return cmake_build(tmp_path_factory.mktemp("trt_build"))

