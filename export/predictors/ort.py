"""ONNX Runtime predictor: BGR image in, instances at the original size out. numpy + onnxruntime only.

Pre-processing ``lapmask.preprocess`` (official resize, pad to 32), inference of the exported static graph,
post-processing ``lapmask.postprocess`` (x4 bilinear, crop, resize to the original size, threshold, boxes) --
the same logic as the PyTorch predictor. Class names, category ids, test sizes, the mask threshold and the
export's fixed input size come from the model's metadata (``export.metadata``).

Imports neither torch nor ``lapmask.model`` (contracts.md section 1). The one exception is a ``plugins``-flavour
model on CPU, whose custom ops (``export.ort_ops``) call the C++ kernels through ``lapmask.ops.clib``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from export.metadata import from_props, read_sidecar, validate_metadata
from export.predictors.base import StaticGraphPredictor


class ProviderError(RuntimeError):
    """The requested ONNX Runtime execution provider is not installed."""


def providers_for(device: str) -> list:
    """ONNX Runtime providers for ``device`` ("cpu" | "cuda" | "cuda:N"), checked against what is installed.

    "cuda:N" passes ``device_id`` N to the CUDA provider (ORT's default is GPU 0, whatever torch uses)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    kind, _, index = device.partition(":")
    if kind == "cuda" and (index == "" or index.isdigit()):
        if "CUDAExecutionProvider" not in available:
            raise ProviderError(f"CUDAExecutionProvider is not available (installed: {', '.join(available)}); "
                                "pip install onnxruntime-gpu (in place of onnxruntime) or use --device cpu")
        return [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]
    raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'")


def make_session(model_path: str, flavour: str = "standard", device: str = "cpu", threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` for an exported lapmask model (custom ops for the plugins flavour)."""
    import onnxruntime as ort

    if not Path(model_path).is_file():
        raise FileNotFoundError(f"model not found: {model_path}")
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    so.log_severity_level = 3  # warnings about unused initialisers etc. are noise for users
    providers = providers_for(device)
    if flavour == "plugins":
        if device != "cpu":
            raise ValueError("plugins-flavour models run in ONNX Runtime on CPU only (their GPU home is TensorRT); "
                             "use --device cpu or the standard flavour")
        from export.ort_ops import plugin_session

        return plugin_session(model_path, providers, so)
    return ort.InferenceSession(model_path, so, providers=providers)


class OrtPredictor(StaticGraphPredictor):
    """Run an exported lapmask ONNX model on single BGR images (see ``StaticGraphPredictor``).

    Args:
        model_path: ``.onnx`` written by ``lapmask export``.
        resize: official test-time resize (shortest edge to the preset's test size); False = native size.
        device: "cpu", "cuda" or "cuda:N" (CUDAExecutionProvider on GPU N).
        threads: intra-op threads (None = ORT default).
    """

    def __init__(self, model_path: str | Path, resize: bool = True, device: str = "cpu",
                 threads: int | None = None) -> None:
        meta = read_model_metadata(str(model_path))
        super().__init__(meta, str(model_path), resize)
        self.session = make_session(self.model_path, meta["flavour"], device, threads)

    def infer(self, image: np.ndarray, image_size: np.ndarray) -> list[np.ndarray]:
        """Raw deploy outputs (num_dets, scores, labels, masks, num_candidates) for prepared inputs."""
        return self.session.run(None, {"image": np.ascontiguousarray(image),
                                       "image_size": image_size.astype(np.int32)})


def read_model_metadata(model_path: str) -> dict[str, Any]:
    """lapmask metadata embedded in an ONNX file (``metadata_props``), else its sidecar JSON."""
    import onnx

    if not Path(model_path).is_file():
        raise FileNotFoundError(f"model not found: {model_path}")
    model = onnx.load(model_path, load_external_data=False)
    meta = from_props({p.key: p.value for p in model.metadata_props})
    if meta.get("format") != "lapmask-deploy":
        meta = read_sidecar(model_path) or meta
    validate_metadata(meta, model_path)
    return meta
