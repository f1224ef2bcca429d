"""Backend registry of the benchmark: one row per (runtime, device, precision, flavour), with

* ``unavailable_reason(spec)``: why it cannot run here (no GPU, tensorrt not installed, ...), checked in the
  parent before anything is exported;
* ``open_stages(spec, job)``: in the worker process, the three timed stages of one image --
  ``pre`` (``lapmask.preprocess.prepare_image``: official resize + pad; the deploy predictors' ``prepare``
  is exactly that plus their fixed-size canvas), ``infer`` (numpy in, numpy out, synchronised: CUDA work is
  finished when it returns), ``post`` (``lapmask.postprocess.postprocess_static``: paste to the original size,
  threshold, boxes).

Inference stage boundaries are the same for every backend: host uint8 image in, host numpy outputs out, so
host<->device copies count as inference everywhere (TensorRT's predictor copies inside ``infer`` too).
Nothing here imports torch at module level: an ONNX Runtime or TensorRT worker never loads it.
"""
from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lapmask.postprocess import postprocess_static
from lapmask.preprocess import prepare_image


@dataclass(frozen=True)
class BackendSpec:
    """One benchmark row. ``artefact``: the exported file it runs (``export.bench.artefacts``), None for eager."""

    name: str
    family: str  # pytorch | torchscript | ort | trt (contracts.md section 7 --backend names)
    device: str  # cpu | cuda
    precision: str  # fp32 | fp16
    flavour: str  # eager | standard | plugins
    label: str
    artefact: str | None


BACKENDS: tuple[BackendSpec, ...] = (
    BackendSpec("pytorch-cpu", "pytorch", "cpu", "fp32", "eager", "PyTorch eager (static path)", None),
    BackendSpec("pytorch-cuda", "pytorch", "cuda", "fp32", "eager", "PyTorch eager (static path)", None),
    BackendSpec("pytorch-cuda-fp16", "pytorch", "cuda", "fp16", "eager", "PyTorch eager, fp16 autocast", None),
    BackendSpec("torchscript-cpu", "torchscript", "cpu", "fp32", "standard", "TorchScript (traced)", "torchscript-cpu"),
    BackendSpec("torchscript-cuda", "torchscript", "cuda", "fp32", "standard", "TorchScript (traced)",
                "torchscript-cuda"),
    BackendSpec("ort-cpu", "ort", "cpu", "fp32", "standard", "ONNX Runtime CPU EP", "onnx-standard-fp32"),
    BackendSpec("ort-cuda", "ort", "cuda", "fp32", "standard", "ONNX Runtime CUDA EP", "onnx-standard-fp32"),
    BackendSpec("trt-fp32", "trt", "cuda", "fp32", "standard", "TensorRT", "engine-standard-fp32"),
    BackendSpec("trt-fp16", "trt", "cuda", "fp16", "standard", "TensorRT", "engine-standard-fp16"),
    BackendSpec("trt-plugins-fp32", "trt", "cuda", "fp32", "plugins", "TensorRT + lapmask plugins",
                "engine-plugins-fp32"),
    BackendSpec("trt-plugins-fp16", "trt", "cuda", "fp16", "plugins", "TensorRT + lapmask plugins",
                "engine-plugins-fp16"),
)
GROUPS = {"all": lambda s: True, "cpu": lambda s: s.device == "cpu", "gpu": lambda s: s.device == "cuda",
          "cuda": lambda s: s.device == "cuda"}


def get_backend(name: str) -> BackendSpec:
    for s in BACKENDS:
        if s.name == name:
            return s
    raise ValueError(f"unknown backend {name!r}; choose from {', '.join(s.name for s in BACKENDS)} or a group "
                     f"({', '.join(sorted({*GROUPS, *(s.family for s in BACKENDS)}))})")


def expand_selection(names: list[str] | tuple[str, ...]) -> list[BackendSpec]:
    """Backend names and groups (``all``, ``cpu``, ``gpu``, a family such as ``pytorch``) -> specs, registry order."""
    chosen: set[str] = set()
    families = {s.family for s in BACKENDS}
    for n in names:
        n = n.strip().lower()
        if n in GROUPS:
            chosen |= {s.name for s in BACKENDS if GROUPS[n](s)}
        elif n in families:
            chosen |= {s.name for s in BACKENDS if s.family == n}
        else:
            chosen.add(get_backend(n).name)
    if not chosen:
        raise ValueError("no backend selected; e.g. --backends all, --backends cpu, --backends pytorch ort-cpu")
    return [s for s in BACKENDS if s.name in chosen]


# ---- availability (parent process) ----

def _torch_cuda_reason(gpu: int) -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU (torch.cuda.is_available() is False)"
    if gpu >= torch.cuda.device_count():
        return f"CUDA device {gpu} does not exist ({torch.cuda.device_count()} device(s))"
    return None


def _cuda_python_gpu_reason(gpu: int) -> str | None:
    from export.trt_engine import NoGpuError, gpu_info

    try:
        gpu_info(gpu)
    except NoGpuError as e:
        return str(e)
    return None


def _missing(module: str, fix: str) -> str | None:
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    return None if found else f"{module} is not installed ({fix})"


def unavailable_reason(spec: BackendSpec, gpu: int = 0) -> str | None:
    """Why ``spec`` cannot run on this machine, or None when it can (cheap: nothing is exported or built)."""
    if spec.family in ("pytorch", "torchscript"):
        return _torch_cuda_reason(gpu) if spec.device == "cuda" else None
    if spec.family == "ort":
        why = _missing("onnxruntime", "pip install onnxruntime, or onnxruntime-gpu for CUDA") or \
            _missing("onnx", "pip install onnx")
        if why or spec.device == "cpu":
            return why
        import onnxruntime as ort

        providers = ort.get_available_providers()
        if "CUDAExecutionProvider" not in providers:
            return (f"onnxruntime has no CUDAExecutionProvider (installed: {', '.join(providers)}); "
                    "pip install onnxruntime-gpu")
        why = _torch_cuda_reason(gpu)  # either torch or cuda-python seeing the GPU is enough
        return None if why is None or _cuda_python_gpu_reason(gpu) is None else why
    # TensorRT
    why = (_missing("tensorrt", "pip install tensorrt; needs an NVIDIA GPU") or _missing("onnx", "pip install onnx")
           or _missing("cuda.bindings", "pip install cuda-python"))
    if why:
        return why
    why = _cuda_python_gpu_reason(gpu)
    if why or spec.flavour != "plugins":
        return why
    from export.trt_checks import find_plugin_library

    if find_plugin_library() is None:
        return ("lapmask TensorRT plugin library not found (build: trt_plugins/plugins/README.md, or set "
                "LAPMASK_TRT_PLUGINS)")
    return None


# ---- the timed stages (worker process) ----

@dataclass
class Stages:
    """pre / infer / post of one backend for one BGR image, and what post-processing and scoring need."""

    prepare: Callable[[np.ndarray], tuple[np.ndarray, tuple[int, int]]]
    run: Callable[[np.ndarray, np.ndarray], list[np.ndarray]]
    mask_thr: float
    class_names: tuple[str, ...]
    category_ids: tuple[int, ...]
    gpu_probe: Any = None  # export.bench.memory.GpuMemoryProbe for CUDA backends
    close: Callable[[], None] = lambda: None

    def pre(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """BGR uint8 [H, W, 3] -> (image uint8 [B, 3, H', W'], image_size int32 [B, 2], resized (h, w))."""
        image, hw = self.prepare(bgr)
        return image, np.array([hw] * image.shape[0], dtype=np.int32), hw

    def infer(self, image: np.ndarray, image_size: np.ndarray) -> list[np.ndarray]:
        """Raw deploy outputs [num_dets, scores, labels, masks, num_candidates] (numpy, device work finished)."""
        return self.run(image, image_size)

    def post(self, outputs: list[np.ndarray], hw: tuple[int, int], ori_hw: tuple[int, int]) -> dict[str, np.ndarray]:
        """Instances of image 0 at ``ori_hw``: scores [N], labels [N], masks bool [N, H, W], boxes [N, 4]."""
        num, scores, labels, masks = outputs[:4]
        return postprocess_static(int(num[0]), scores[0], labels[0], masks[0], hw, ori_hw, self.mask_thr)

    def __call__(self, bgr: np.ndarray, ori_hw: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
        image, size, hw = self.pre(bgr)
        return self.post(self.infer(image, size), hw, ori_hw or (int(bgr.shape[0]), int(bgr.shape[1])))


def _cuda_device(spec: BackendSpec, gpu: int) -> str:
    return f"cuda:{gpu}" if spec.device == "cuda" else "cpu"


def _fp32_nms(cfg: Any) -> Callable:
    """Matrix NMS outside autocast: mask intersections reach 67,200 > the fp16 maximum (spec 10.8)."""
    import torch

    from lapmask.inference.static import default_nms_fn

    base = default_nms_fn(cfg)

    def nms(masks: Any, labels: Any, scores: Any, areas: Any) -> Any:
        with torch.autocast("cuda", enabled=False):
            return base(masks, labels, scores.float(), areas.float())
    return nms


def _open_pytorch(spec: BackendSpec, job: dict) -> Stages:
    import torch

    from export.bench.memory import GpuMemoryProbe
    from lapmask.engine.checkpoint import load_model
    from lapmask.inference import Predictor

    device = _cuda_device(spec, job["gpu"])
    probe = GpuMemoryProbe(job["gpu"], via_torch=True) if spec.device == "cuda" else None
    model, cfg = load_model(job["weights"], job.get("config"), device)
    predictor = Predictor(model, cfg, resize=job["resize"], static=True)
    deploy = predictor.deploy
    fp16 = spec.precision == "fp16"
    if fp16:
        deploy.nms_fn = _fp32_nms(cfg)
    ic = cfg.input

    def prepare(bgr: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        return prepare_image(bgr, ic.min_size_test, ic.max_size_test, job["resize"], ic.size_divisibility)

    def run(image: np.ndarray, size: np.ndarray) -> list[np.ndarray]:
        amp = torch.autocast("cuda", dtype=torch.float16) if fp16 else contextlib.nullcontext()
        with torch.no_grad(), amp:
            out = deploy(torch.from_numpy(image).to(device), torch.from_numpy(size).to(device))
        if spec.device == "cuda":
            torch.cuda.synchronize(device)
        return [t.float().cpu().numpy() if t.is_floating_point() else t.cpu().numpy() for t in out]

    return Stages(prepare, run, float(cfg.inference.mask_thr), tuple(cfg.class_names),
                  tuple(int(c) for c in cfg.category_ids), probe)


def _open_predictor(spec: BackendSpec, job: dict) -> Stages:
    """TorchScript, ONNX Runtime and TensorRT: the ``export.predictors`` runtime of the exported artefact."""
    from export.bench.memory import GpuMemoryProbe

    probe = None
    if spec.device == "cuda":
        probe = GpuMemoryProbe(job["gpu"], via_torch=spec.family == "torchscript")
    device = _cuda_device(spec, job["gpu"])
    if spec.family == "ort":
        from export.predictors.ort import OrtPredictor

        pred = OrtPredictor(job["artefact"], resize=job["resize"], device=spec.device, threads=job.get("threads"))
    else:
        from export.predictors import load_predictor

        pred = load_predictor(spec.family, job["artefact"], resize=job["resize"], device=device)
    run = pred.infer
    if spec.family == "torchscript" and spec.device == "cuda":
        import torch

        def run(image: np.ndarray, size: np.ndarray) -> list[np.ndarray]:  # outputs are copied to the host,
            out = pred.infer(image, size)  # which synchronises; the explicit sync documents it
            torch.cuda.synchronize(device)
            return out
    return Stages(pred.prepare, run, float(pred.mask_thr), tuple(pred.class_names), tuple(pred.category_ids),
                  probe, getattr(pred, "close", lambda: None))


def open_stages(spec: BackendSpec, job: dict) -> Stages:
    """Load the backend described by ``job`` (weights / artefact, resize, gpu, threads) in this process."""
    if job.get("threads") and spec.family in ("pytorch", "torchscript"):
        import torch

        torch.set_num_threads(int(job["threads"]))
    if spec.family == "pytorch":
        return _open_pytorch(spec, job)
    return _open_predictor(spec, job)
