"""TrtPredictor's plumbing against stand-ins for ``tensorrt`` and ``cuda.bindings.runtime`` ("device" memory is
host memory; the fake engine computes its outputs from the bytes it finds at the input addresses): sidecar
checks first, shapes set, buffers sized from the engine and grown, copies in and out, output order, the profile
check, and the full callable path through lapmask.postprocess. The real runtime: test_trt_engine_parity.py."""
from __future__ import annotations

import ctypes
import sys
import types

import numpy as np
import pytest
from trt_testlib import fake_engine

K = 4  # output slots of the fake engine


def fake_cudart(rec):
    ok = "cudaSuccess"
    mem: dict[int, ctypes.Array] = {}
    cu = types.SimpleNamespace(cudaError_t=types.SimpleNamespace(cudaSuccess=ok),
                               cudaMemcpyKind=types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2))

    def malloc(n):
        buf = ctypes.create_string_buffer(n)
        mem[ctypes.addressof(buf)] = buf
        rec.setdefault("mallocs", []).append(n)
        return ok, ctypes.addressof(buf)

    def memcpy(dst, src, n, kind, stream):
        ctypes.memmove(dst, src, n)
        return (ok,)

    cu.cudaMalloc = malloc
    cu.cudaMemcpyAsync = memcpy
    cu.cudaFree = lambda p: (mem.pop(p, None), (ok,))[1]
    cu.cudaSetDevice = lambda d: (ok,)
    cu.cudaStreamCreate = lambda: (ok, 7)
    cu.cudaStreamSynchronize = lambda s: (ok,)
    cu.cudaStreamDestroy = lambda s: (ok,)
    cu.cudaGetErrorString = lambda e: (ok, b"fake error")
    cu.memory = mem
    return cu


def fake_tensorrt(rec):
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.99.1"
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")
    trt.nptype = lambda t: t
    specs = {"image": ("in", np.uint8), "image_size": ("in", np.int32), "num_dets": ("out", np.int32),
             "scores": ("out", np.float32), "labels": ("out", np.int32), "masks": ("out", np.float32),
             "num_candidates": ("out", np.int32)}

    class Context:
        def __init__(self):
            self.addr, self.hw = {}, None

        def set_input_shape(self, name, shape):
            rec["input_shape"] = tuple(shape)
            self.hw = shape[2:]
            return True

        def get_tensor_shape(self, name):
            h, w = self.hw
            return {"num_dets": (1,), "scores": (1, K), "labels": (1, K), "masks": (1, K, h // 4, w // 4),
                    "num_candidates": (1,)}[name]

        def set_tensor_address(self, name, ptr):
            self.addr[name] = ptr

        def view(self, name, shape):
            dtype = specs[name][1]
            n = int(np.prod(shape)) * np.dtype(dtype).itemsize
            return np.frombuffer((ctypes.c_char * n).from_address(self.addr[name]), dtype=dtype).reshape(shape)

        def execute_async_v3(self, stream):
            rec["stream"] = stream
            h, w = self.hw
            image = self.view("image", (1, 3, h, w))
            size = self.view("image_size", (1, 2))
            self.view("num_dets", (1,))[:] = 2
            self.view("num_candidates", (1,))[:] = int(size[0, 0])
            self.view("scores", (1, K))[:] = [0.9, 0.5, 0, 0]
            self.view("labels", (1, K))[:] = [3, 1, -1, -1]
            masks = self.view("masks", (1, K, h // 4, w // 4))
            masks[:] = 0
            masks[0, 0] = image[0, 0, ::4, ::4] / 255.0  # first instance: the blue channel, subsampled
            masks[0, 1, : h // 8] = 1.0  # second: the top half
            return True

    class Engine:
        num_io_tensors = len(specs)

        def get_tensor_name(self, i):
            return list(specs)[i]

        def get_tensor_mode(self, name):
            return specs[name][0]

        def get_tensor_dtype(self, name):
            return specs[name][1]

        def create_execution_context(self):
            return Context()

    class Runtime:
        def __init__(self, logger):
            pass

        def get_plugin_registry(self):
            raise AssertionError("no plugin library for a standard engine")

        def deserialize_cuda_engine(self, data):
            rec["deserialized"] = bytes(data)
            return Engine()

    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    trt.Runtime = Runtime
    return trt


@pytest.fixture
def predictor(monkeypatch, tmp_path):
    import export.predictors.trt as pt
    from export.trt_engine import GpuInfo

    rec = {}
    cu = fake_cudart(rec)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(rec))
    monkeypatch.setattr(pt, "_cuda", lambda: cu)
    monkeypatch.setattr(pt, "gpu_info", lambda device=0: GpuInfo(device, "Fake GPU", "9.0"))
    engine = fake_engine(tmp_path / "m.engine", trt_version="10.99.1", gpu="Fake GPU", cc="9.0")

    def make(**kw):
        return pt.TrtPredictor(engine, **kw), rec, cu
    make.rec = rec
    return make


def test_infer_plumbing(predictor):
    pred, rec, cu = predictor()
    assert rec["deserialized"].startswith(b"not a real TensorRT plan")  # the engine file's bytes
    image = (np.arange(1 * 3 * 64 * 96) % 251).astype(np.uint8).reshape(1, 3, 64, 96)
    out = pred.infer(image, np.array([[60, 90]], dtype=np.int32))
    num, scores, labels, masks, ncand = out  # metadata output order
    assert rec["input_shape"] == (1, 3, 64, 96) and rec["stream"] == 7
    assert num.tolist() == [2] and ncand.tolist() == [60] and labels.tolist() == [[3, 1, -1, -1]]
    assert scores.dtype == np.float32 and masks.shape == (1, K, 16, 24)
    np.testing.assert_allclose(masks[0, 0], image[0, 0, ::4, ::4] / 255.0, rtol=1e-6)
    first = list(rec["mallocs"])
    pred.infer(np.zeros((1, 3, 128, 96), np.uint8), np.array([[128, 96]], dtype=np.int32))
    assert len(rec["mallocs"]) > len(first)  # image and masks buffers grew
    pred.close()
    assert cu.memory == {}


def test_profile_is_enforced(predictor):
    pred, _, _ = predictor()
    with pytest.raises(ValueError, match="outside the engine's profile"):
        pred.infer(np.zeros((1, 3, 544, 64), np.uint8), np.array([[544, 64]], dtype=np.int32))


def test_callable_interface(predictor):
    pred, _, _ = predictor()
    bgr = np.zeros((100, 150, 3), np.uint8)
    bgr[:, :, 0] = 255  # blue everywhere: instance 0's probability 1 over the image
    out = pred(bgr)
    assert out["scores"].tolist() == pytest.approx([0.9, 0.5])
    assert out["labels"].tolist() == [3, 1] and out["masks"].shape == (2, 100, 150)
    assert out["masks"][0].all() and out["boxes"][0].tolist() == [0, 0, 149, 99]
    assert pred.class_names and len(pred.class_names) == len(pred.category_ids)


def test_sidecar_mismatch_stops_before_deserializing(predictor, monkeypatch):
    import export.predictors.trt as pt
    from export.trt_checks import EngineCompatibilityError
    from export.trt_engine import GpuInfo

    monkeypatch.setattr(pt, "gpu_info", lambda device=0: GpuInfo(device, "Other GPU", "8.6"))
    with pytest.raises(EngineCompatibilityError, match="compute capability 9.0"):
        predictor()
    assert "deserialized" not in predictor.rec  # refused before TensorRT saw the bytes


def test_device_spellings(monkeypatch):
    import export.predictors.trt as pt

    seen = []
    monkeypatch.setattr(pt, "TrtPredictor", lambda path, resize, device: seen.append(device))
    for spelling, index in ((None, 0), ("cuda", 0), ("cuda:1", 1), (2, 2)):
        pt.load_predictor("m.engine", device=spelling)
        assert seen[-1] == index
    with pytest.raises(ValueError, match="CUDA devices only"):
        pt.load_predictor("m.engine", device="cpu")
