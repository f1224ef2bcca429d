"""Helpers for the TensorRT tests: tiny ONNX graphs with lapmask metadata, fake engines with sidecars, and the
CMake build of the plugin library + harness (shared by the test files through conftest fixtures)."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper

REPO = Path(__file__).resolve().parents[2]
TRT_HEADERS_DEFAULT = REPO / ".third_party" / "tensorrt" / "include"


def lite_metadata(flavour: str = "standard", precision: str = "fp32", input_hw: tuple[int, int] | None = None,
                  batch: int = 1) -> dict[str, Any]:
    """Real export metadata of lite_R18 (export.metadata.build_metadata), without exporting anything."""
    from export.metadata import build_metadata
    from lapmask.config import get_preset

    cfg = get_preset("lite_R18")
    return build_metadata(cfg, precision=precision, flavour=flavour, dcn_form="gridsample" if flavour == "standard"
                          else "plugin", k_pre=cfg.inference.k_pre, max_dets=cfg.inference.max_per_img, opset=19,
                          input_hw=input_hw, batch=batch, exporter="tests/trt")


def tiny_onnx(path: Path, *, flavour: str = "standard", meta: dict[str, Any] | None = None,
              lapmask_version: int = 1, extra_op: tuple[str, str] | None = None, w_dtype: int = TensorProto.FLOAT,
              empty_bias: bool = True) -> Path:
    """A small graph with the deploy inputs and lapmask metadata; ``flavour="plugins"`` adds a
    ``lapmask::DynamicDeformConv`` (X, W, offset, B="" or none, mask) and a ``lapmask::MatrixNMS`` node.
    ``extra_op``: one more custom node (domain, op_type)."""
    from export.metadata import to_props

    img = helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 3, "height", "width"])
    size = helper.make_tensor_value_info("image_size", TensorProto.INT32, [1, 2])
    nodes = [helper.make_node("Cast", ["image"], ["x32"], to=TensorProto.FLOAT, name="cast"),
             helper.make_node("ReduceSum", ["x32"], ["num"], keepdims=0, name="sum")]
    outputs = [helper.make_tensor_value_info("num", TensorProto.FLOAT, [])]
    inits = []
    opsets = [helper.make_opsetid("", 19)]
    if flavour == "plugins":
        inits = [helper.make_tensor("W", w_dtype, [4, 3, 3, 3], [0.0] * 108),
                 helper.make_tensor("offset", w_dtype, [1, 18, 8, 8], [0.0] * 1152),
                 helper.make_tensor("mask", w_dtype, [1, 9, 8, 8], [1.0] * 576),
                 helper.make_tensor("masks", TensorProto.FLOAT, [5, 8, 8], [1.0] * 320),
                 helper.make_tensor("scores", TensorProto.FLOAT, [5], [0.9, 0.8, 0.7, -1, -1]),
                 helper.make_tensor("labels", TensorProto.INT32, [5], [0, 0, 1, 0, 0])]
        dcn_inputs = ["x_small", "W", "offset", "", "mask"] if empty_bias else ["x_small", "W", "offset"]
        nodes += [helper.make_node("Slice", ["x32", "starts", "ends", "axes"], ["x_small"], name="crop"),
                  helper.make_node("DynamicDeformConv", dcn_inputs, ["y"], domain="lapmask", name="dcn",
                                   pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
                  helper.make_node("MatrixNMS", ["masks", "scores", "labels"], ["decayed"], domain="lapmask",
                                   name="nms", kernel="gaussian", sigma=2.0)]
        inits += [helper.make_tensor("starts", TensorProto.INT64, [2], [0, 0]),
                  helper.make_tensor("ends", TensorProto.INT64, [2], [8, 8]),
                  helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])]
        outputs += [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                    helper.make_tensor_value_info("decayed", TensorProto.FLOAT, None)]
        opsets.append(helper.make_opsetid("lapmask", lapmask_version))
    if extra_op is not None:
        nodes.append(helper.make_node(extra_op[1], ["num"], ["extra"], domain=extra_op[0], name="extra"))
        outputs.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, None))
        if extra_op[0] not in {o.domain for o in opsets}:
            opsets.append(helper.make_opsetid(extra_op[0], 1))
    graph = helper.make_graph(nodes, "tiny", [img, size], outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=opsets)
    for k, v in to_props(meta if meta is not None else lite_metadata(flavour)).items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


def fake_engine(path: Path, onnx_path: Path | None = None, *, trt_version: str = "10.9.0", gpu: str = "NVIDIA A100",
                cc: str = "8.0", plugin_sha: str | None = None, meta: dict[str, Any] | None = None) -> Path:
    """Engine bytes (not a real plan) + the sidecar build-engine writes, for sidecar tests."""
    from export.metadata import file_digest, write_sidecar

    path.write_bytes(b"not a real TensorRT plan " * 8)
    m = dict(meta or lite_metadata())
    m.update({"artefact": "tensorrt-engine", "tensorrt_version": trt_version, "gpu_name": gpu,
              "compute_capability": cc, "onnx_file": onnx_path.name if onnx_path else "m.onnx",
              "onnx_sha256": file_digest(onnx_path) if onnx_path else "0" * 64, "plugin_library": None,
              "plugin_library_sha256": plugin_sha,
              "profiles": [{"input": "image", "min": [1, 3, 32, 32], "opt": [1, 3, 256, 352], "max": [1, 3, 512, 512]}]})
    write_sidecar(path, m)
    return path


# ---- CMake build of the plugin library and the harness ----

def build_skip_reason() -> str | None:
    """Why the plugin build cannot run here (None: it can)."""
    if not shutil.which("cmake"):
        return "cmake is not installed"
    if not shutil.which("nvcc"):
        return "nvcc (CUDA toolkit) is not on PATH: the plugins need the CUDA kernels"
    headers = os.environ.get("TensorRT_INCLUDE_DIR") or str(TRT_HEADERS_DEFAULT)
    if not (Path(headers) / "NvInferRuntime.h").is_file():
        return (f"TensorRT headers not found at {headers} (set TensorRT_INCLUDE_DIR, or export them: mkdir -p "
                ".third_party/tensorrt && git -C <TensorRT clone> archive HEAD include | tar -x -C .third_party/tensorrt)")
    return None


def cmake_build(build_dir: Path, jobs: int = 2) -> dict[str, Any]:
    """Configure + build the whole tree (kernels, plugins, harness) into ``build_dir``; returns paths, logs, time."""
    headers = os.environ.get("TensorRT_INCLUDE_DIR") or str(TRT_HEADERS_DEFAULT)
    t0 = time.perf_counter()
    cfg = subprocess.run(["cmake", "-S", str(REPO), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                          "-DLAPMASK_BUILD_CUDA=ON", "-DLAPMASK_BUILD_PLUGINS=ON", f"-DTensorRT_INCLUDE_DIR={headers}"],
                         check=False, capture_output=True, text=True)
    if cfg.returncode != 0:
        raise RuntimeError(f"cmake configure failed:\n{cfg.stdout[-4000:]}\n{cfg.stderr[-4000:]}")
    build = subprocess.run(["cmake", "--build", str(build_dir), "-j", str(jobs), "--target", "lapmask_trt_plugins",
                            "lapmask_harness_deform_conv", "lapmask_harness_matrix_nms"],
                           check=False, capture_output=True, text=True)
    if build.returncode != 0:
        raise RuntimeError(f"cmake build failed:\n{build.stdout[-6000:]}\n{build.stderr[-6000:]}")
    return {"dir": build_dir, "lib": build_dir / "lib" / "liblapmask_trt_plugins.so",
            "manifest": build_dir / "lib" / "liblapmask_trt_plugins.manifest.json",
            "harness": {"deform": build_dir / "bin" / "lapmask_harness_deform_conv",
                        "nms": build_dir / "bin" / "lapmask_harness_matrix_nms"},
            "log": build.stdout + build.stderr, "seconds": time.perf_counter() - t0}
