"""The plugin library and its harness compile against TensorRT's headers alone (CMake, a fresh build folder), the
library exports exactly TensorRT's entry points and needs no TensorRT library, the compiled creators agree with the
op contract, and the harness passes (host part here; enqueue part where a GPU exists).

Build time measured on the 2-core CI machine: ~46 s for kernels + plugins + harness (not marked slow)."""
from __future__ import annotations

import ctypes
import json
import shutil
import subprocess

import pytest
from trt_testlib import tiny_onnx

EXPORTS = {"getCreators", "setLoggerFinder", "lapmaskTrtPluginsManifest", "lapmaskTrtPluginsStaticallyRegistered"}


def test_builds_without_warnings(plugin_build):
    assert plugin_build["lib"].is_file() and plugin_build["manifest"].is_file()
    warnings = [line for line in plugin_build["log"].splitlines() if "warning" in line.lower()]
    assert warnings == [], "\n".join(warnings[:20])
    print(f"plugin build: {plugin_build['seconds']:.1f} s")


@pytest.mark.skipif(shutil.which("nm") is None, reason="binutils nm is not installed")
def test_exports_and_no_tensorrt_link_dependency(plugin_build):
    lib = str(plugin_build["lib"])
    defined = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True, check=True).stdout
    names = {line.split()[-1] for line in defined.splitlines() if line.strip()}
    assert names == EXPORTS
    undefined = subprocess.run(["nm", "-D", "--undefined-only", lib], capture_output=True, text=True,
                               check=True).stdout
    assert "nvinfer" not in undefined.lower() and "getPluginRegistry" not in undefined
    assert "cuda" not in undefined.lower()  # the CUDA runtime is linked statically


def test_library_loads_without_tensorrt_and_lists_both_creators(plugin_build):
    lib = ctypes.CDLL(str(plugin_build["lib"]), mode=ctypes.RTLD_LOCAL)
    n = ctypes.c_int32(-1)
    lib.getCreators.restype = ctypes.c_void_p
    assert lib.getCreators(ctypes.byref(n)) and n.value == 2  # nothing statically registered: no TensorRT here
    assert lib.lapmaskTrtPluginsStaticallyRegistered() == 0


def test_compiled_creators_match_the_contract(plugin_build):
    from export.trt_checks import contract_problems, creators_from_manifest, parse_plugin_sources, read_manifest

    manifest = read_manifest(plugin_build["lib"])
    assert manifest == json.loads(plugin_build["manifest"].read_text())  # the build's JSON is the library's own
    creators = creators_from_manifest(manifest)
    assert contract_problems(creators) == []
    for c in manifest["creators"]:
        assert c["interface"] == "PLUGIN CREATOR_V3ONE" and c["creates_with_defaults"]
        assert c["capabilities"] == {"core": True, "build": True, "runtime": True}
        assert c["plugin_identity"] == [c["name"], c["version"], c["namespace"]]
        assert c["output_types_consistent"] and c["non_linear_rejected"] and c["nb_outputs"] == 1
    # the sources say the same as the binary
    src = {c.name: (c.version, c.namespace, c.fields) for c in parse_plugin_sources()}
    assert src == {c.name: (c.version, c.namespace, c.fields) for c in creators}
    assert int(manifest["tensorrt_headers"].split(".")[0]) >= 10


def test_inventory_against_the_built_library(plugin_build, tmp_path):
    from export.trt_checks import inventory_problems, library_creators, onnx_custom_nodes

    creators = library_creators(plugin_build["lib"])
    assert inventory_problems(onnx_custom_nodes(tiny_onnx(tmp_path / "p.onnx", flavour="plugins")), creators) == []
    v2 = onnx_custom_nodes(tiny_onnx(tmp_path / "v2.onnx", flavour="plugins", lapmask_version=2))
    assert len(inventory_problems(v2, creators)) == 2


@pytest.mark.parametrize("which", ["deform", "nms"])
def test_harness_host_checks(plugin_build, which):
    r = subprocess.run([str(plugin_build["harness"][which]), "--host-only"], check=False, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 failures" in r.stdout and "checks" in r.stdout


@pytest.mark.cuda
@pytest.mark.parametrize("which", ["deform", "nms"])
def test_harness_enqueue_on_gpu(plugin_build, which):
    r = subprocess.run([str(plugin_build["harness"][which])], check=False, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr  # 77 would mean "no device" although torch sees one
