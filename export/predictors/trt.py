"""TensorRT predictor: BGR image in, instances at the original size out. tensorrt + cuda-python + numpy only.

Same callable interface as the ONNX Runtime predictor (``export.predictors.base.StaticGraphPredictor``):
``lapmask.preprocess`` in front, ``lapmask.postprocess`` behind, class names / category ids / test sizes / mask
threshold from the metadata -- here the engine's sidecar, which is checked BEFORE the engine is deserialized
(TensorRT version, GPU, plugin library hash: ``export.trt_checks``). Device memory and the stream go through
``cuda.bindings.runtime``; output buffers are sized from the engine for the current input shape.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from export.predictors.base import StaticGraphPredictor
from export.trt_checks import check_engine_sidecar, find_plugin_library, read_engine_sidecar
from export.trt_engine import INPUT_IMAGE, Profile, gpu_info, import_tensorrt, load_plugin_library


def _cuda() -> Any:
    from cuda.bindings import runtime as cudart

    return cudart


def _check(result: Any, what: str) -> Any:
    """cuda-python calls return (err, *values): raise on error, return the value(s)."""
    cudart = _cuda()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"{what} failed: {cudart.cudaGetErrorString(err)[1].decode()}")
    return values[0] if len(values) == 1 else values


class TrtPredictor(StaticGraphPredictor):
    """Run a lapmask TensorRT engine (``lapmask build-engine``) on single BGR images.

    Args:
        engine_path: ``.engine`` with its sidecar ``.engine.json``.
        resize: official test-time resize; False = native size (must fit the engine's profile).
        plugins: plugin library for engines with lapmask plugins (default: $LAPMASK_TRT_PLUGINS, the path in the
            sidecar, build/lib); its SHA-256 must equal the one the engine was built with.
        device: CUDA device index; allow_other_gpu: accept another GPU model of the same compute capability.
    """

    def __init__(self, engine_path: str | Path, resize: bool = True, plugins: str | Path | None = None,
                 device: int = 0, allow_other_gpu: bool = False) -> None:
        engine_path = Path(engine_path)
        meta = read_engine_sidecar(engine_path)
        super().__init__(meta, str(engine_path), resize)
        trt = import_tensorrt()
        gpu = gpu_info(device)
        library = find_plugin_library(plugins, meta) if meta.get("plugin_library_sha256") else None
        check_engine_sidecar(meta, engine_path, tensorrt_version=trt.__version__, gpu_name=gpu.name,
                             compute_capability=gpu.compute_capability, plugin_library=library,
                             allow_other_gpu=allow_other_gpu)
        cudart = _cuda()
        _check(cudart.cudaSetDevice(device), f"cudaSetDevice({device})")
        self.trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        if library is not None:
            load_plugin_library(trt, self.runtime.get_plugin_registry(), library)
        self.engine = self.runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {engine_path} (see the TensorRT log above)")
        self.context = self.engine.create_execution_context()
        self.stream = _check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        p = meta["profiles"][0]
        self.profile = Profile(tuple(p["min"][2:]), tuple(p["opt"][2:]), tuple(p["max"][2:]), int(p["min"][0]))
        self.output_names = list(meta["output_names"])
        self._buffers: dict[str, tuple[int, int]] = {}  # tensor name -> (device pointer, bytes)

    def _tensors(self) -> list[str]:
        return [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]

    def _device(self, name: str, nbytes: int) -> int:
        """A device buffer for ``name`` of at least ``nbytes`` (grown when the input shape grows)."""
        ptr, have = self._buffers.get(name, (0, 0))
        if have < max(nbytes, 1):
            cudart = _cuda()
            if ptr:
                _check(cudart.cudaFree(ptr), "cudaFree")
            ptr = int(_check(cudart.cudaMalloc(max(nbytes, 1)), f"cudaMalloc({nbytes}) for {name}"))
            self._buffers[name] = (ptr, max(nbytes, 1))
        return ptr

    def infer(self, image: np.ndarray, image_size: np.ndarray) -> list[np.ndarray]:
        """Raw deploy outputs (num_dets, scores, labels, masks, num_candidates) for prepared inputs."""
        trt, cudart = self.trt, _cuda()
        h, w = int(image.shape[2]), int(image.shape[3])
        if not self.profile.covers(h, w):
            raise ValueError(f"input {h}x{w} is outside the engine's profile {self.profile.min[0]}x{self.profile.min[1]}"
                             f" .. {self.profile.max[0]}x{self.profile.max[1]}; rebuild with lapmask build-engine "
                             "--min-shape/--max-shape")
        feeds = {"image": np.ascontiguousarray(image, dtype=np.uint8),
                 "image_size": np.ascontiguousarray(image_size, dtype=np.int32)}
        if not self.context.set_input_shape(INPUT_IMAGE, feeds["image"].shape):
            raise ValueError(f"TensorRT refused the input shape {feeds['image'].shape}")
        stream = int(self.stream)
        outputs: dict[str, np.ndarray] = {}
        for name in self._tensors():
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                host = feeds[name].astype(dtype, copy=False)
                ptr = self._device(name, host.nbytes)
                _check(cudart.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes,
                                              cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream), "copy in")
                feeds[name] = host  # keep alive until the stream is synchronised
            else:
                shape = tuple(self.context.get_tensor_shape(name))
                outputs[name] = np.empty(shape, dtype=dtype)
                ptr = self._device(name, outputs[name].nbytes)
            self.context.set_tensor_address(name, ptr)
        if not self.context.execute_async_v3(stream):
            raise RuntimeError("TensorRT execution failed (see the TensorRT log above)")
        for name, host in outputs.items():
            _check(cudart.cudaMemcpyAsync(host.ctypes.data, self._buffers[name][0], host.nbytes,
                                          cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream), "copy out")
        _check(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        return [outputs[n] for n in self.output_names]

    def close(self) -> None:
        """Free device buffers and the stream (also done when the predictor is garbage-collected)."""
        try:
            cudart = _cuda()
        except ImportError:
            return
        for ptr, _ in self._buffers.values():
            cudart.cudaFree(ptr)
        self._buffers.clear()
        if getattr(self, "stream", None) is not None:
            cudart.cudaStreamDestroy(self.stream)
            self.stream = None

    def __del__(self) -> None:
        if hasattr(self, "_buffers"):
            self.close()


def load_predictor(model_path: str, resize: bool = True, **kwargs: Any) -> TrtPredictor:
    """Entry point used by ``export.predictors.load_predictor("trt", ...)``."""
    device = kwargs.pop("device", None)
    if isinstance(device, str):  # the generic "cuda" / "cuda:1" spelling -> a device index
        if not (device == "cuda" or device.startswith("cuda:") and device[5:].isdigit()):
            raise ValueError(f"TensorRT runs on CUDA devices only: use device 'cuda' or 'cuda:N', got {device!r}")
        device = int(device[5:]) if ":" in device else 0
    return TrtPredictor(model_path, resize=resize, device=0 if device is None else int(device), **kwargs)
