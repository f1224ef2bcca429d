"""ctypes binding of ``liblapmask_kernels`` (trt_plugins/kernels): the C++/CUDA DynamicDeformConv and MatrixNMS.

The library is optional and loaded lazily on the first call; ``import lapmask.ops`` never imports this module.
It is located, in order, at ``$LAPMASK_KERNELS_LIB`` (a file), in the repository's ``build*/`` folders, then
next to the package (``lapmask/lib/``, ``lapmask/ops/``). Build it with ``python -m lapmask.ops.build_kernels``.

Every wrapper checks devices, dtypes, shapes and contiguity before calling into C and raises ``ValueError`` with
a fix-it message; the C side checks again and reports failures as status codes (never an abort). Semantics and
attribute defaults: ``lapmask.ops.contract`` / OPS.md.
"""
from __future__ import annotations

import ctypes
import math
import os
import sys
from functools import cache
from pathlib import Path

import torch
from torch import Tensor

from lapmask.ops.contract import MATRIX_NMS_KERNELS

ENV_VAR = "LAPMASK_KERNELS_LIB"
ABI_VERSION = 1  # must equal LAPMASK_KERNELS_ABI_VERSION in lapmask_kernels.h
REPO_ROOT = Path(__file__).resolve().parents[2]

# lapmask_status / lapmask_dtype codes (lapmask_kernels.h)
_OK, _INVALID, _OOM, _CUDA_ERR, _NOT_COMPILED = 0, 1, 2, 3, 4
_DTYPES = {torch.float32: 0, torch.float16: 1, torch.float64: 2, torch.uint8: 3, torch.int32: 4}
_CPU_CONV_DTYPES = (torch.float32, torch.float16, torch.float64)
_CUDA_CONV_DTYPES = (torch.float32, torch.float16)
_MASK_DTYPES = (torch.float32, torch.float16, torch.uint8, torch.bool)


class KernelsNotAvailableError(RuntimeError):
    """liblapmask_kernels is missing, cannot be loaded, or lacks a requested feature (e.g. CUDA)."""


class _DeformDesc(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int64) for n in ("batch", "channels", "height", "width", "out_channels")] + [
        (n, ctypes.c_int32) for n in ("kernel_h", "kernel_w", "stride_h", "stride_w", "pad_top", "pad_left",
                                      "pad_bottom", "pad_right", "dilation_h", "dilation_w", "group", "offset_group")]


def library_filename() -> str:
    """Platform file name of the shared library."""
    if sys.platform == "win32":
        return "lapmask_kernels.dll"
    return "liblapmask_kernels.dylib" if sys.platform == "darwin" else "liblapmask_kernels.so"


def candidate_paths() -> list[Path]:
    """Where the library is looked for when ``$LAPMASK_KERNELS_LIB`` is unset, in order."""
    name = library_filename()
    builds = [REPO_ROOT / "build"] + sorted(p for p in REPO_ROOT.glob("build-*") if p.is_dir())
    paths = [b / sub / name for b in builds for sub in ("lib", ".")]
    pkg = Path(__file__).resolve().parents[1]
    return paths + [pkg / "lib" / name, pkg / "ops" / name]


def _not_found_message(looked: list[Path]) -> str:
    where = "\n  ".join(str(p) for p in looked)
    return (f"liblapmask_kernels was not found. Looked in:\n  {where}\n"
            "Build it with `python -m lapmask.ops.build_kernels` (needs cmake >= 3.18 and a C++17 compiler; nvcc "
            f"adds the CUDA kernels), or point {ENV_VAR} at an existing {library_filename()}.")


def find_library() -> Path:
    """Path of the library to load; raises KernelsNotAvailableError with build instructions when absent."""
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise KernelsNotAvailableError(f"{ENV_VAR}={env} is not a file; unset it or build the library with "
                                           "`python -m lapmask.ops.build_kernels`")
        return path
    looked = candidate_paths()
    for path in looked:
        if path.is_file():
            return path
    raise KernelsNotAvailableError(_not_found_message(looked))


def _declare(lib: ctypes.CDLL) -> None:
    c_void_p, c_int32, c_int64, c_float = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64, ctypes.c_float
    desc_p, size_p = ctypes.POINTER(_DeformDesc), ctypes.POINTER(ctypes.c_size_t)
    sigs = {
        "lapmask_kernels_abi_version": (c_int32, []),
        "lapmask_kernels_build_info": (ctypes.c_char_p, []),
        "lapmask_kernels_has_cuda": (c_int32, []),
        "lapmask_last_error": (ctypes.c_char_p, []),
        "lapmask_deform_conv_desc_init": (None, [desc_p]),
        "lapmask_matrix_nms_default_kernel": (c_int32, []),
        "lapmask_matrix_nms_default_sigma": (c_float, []),
        "lapmask_matrix_nms_kernel_from_name": (c_int32, [ctypes.c_char_p, ctypes.POINTER(c_int32)]),
        "lapmask_deform_conv_output_size": (c_int32, [desc_p, ctypes.POINTER(c_int64), ctypes.POINTER(c_int64)]),
        "lapmask_deform_conv_cpu": (c_int32, [desc_p, c_int32] + [c_void_p] * 6),
        "lapmask_deform_conv_cuda_workspace_size": (c_int32, [desc_p, c_int32, size_p]),
        "lapmask_deform_conv_cuda": (c_int32, [desc_p, c_int32] + [c_void_p] * 7 + [ctypes.c_size_t, c_void_p]),
        "lapmask_matrix_nms_cpu": (c_int32, [c_int64, c_int64, c_int32] + [c_void_p] * 3 + [c_int32, c_float,
                                                                                          c_void_p]),
        "lapmask_matrix_nms_cuda_workspace_size": (c_int32, [c_int64, c_int64, size_p]),
        "lapmask_matrix_nms_cuda": (c_int32, [c_int64, c_int64, c_int32] + [c_void_p] * 3 + [c_int32, c_float,
                                    c_void_p, c_void_p, ctypes.c_size_t, c_void_p]),
        "lapmask_float_to_half_bits": (c_int32, [c_void_p, c_void_p, c_int64]),
        "lapmask_half_bits_to_float": (c_int32, [c_void_p, c_void_p, c_int64]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes


@cache
def _load(path: str) -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(path)
        _declare(lib)
    except (OSError, AttributeError) as e:
        raise KernelsNotAvailableError(f"cannot load {path}: {e}. Rebuild it with "
                                       "`python -m lapmask.ops.build_kernels --clean`") from e
    abi = lib.lapmask_kernels_abi_version()
    if abi != ABI_VERSION:
        raise KernelsNotAvailableError(f"{path} has C ABI version {abi}, this lapmask needs {ABI_VERSION}; rebuild "
                                       "with `python -m lapmask.ops.build_kernels`")
    return lib


def load() -> ctypes.CDLL:
    """The loaded library (cached per path)."""
    return _load(str(find_library().resolve()))


def is_available() -> bool:
    """True when the library can be found and loaded."""
    try:
        load()
    except KernelsNotAvailableError:
        return False
    return True


def build_info() -> str:
    """E.g. ``"cpu openmp cuda(75,80,86,89,90)"``."""
    return load().lapmask_kernels_build_info().decode()


def has_cuda() -> bool:
    """Whether the library was compiled with the CUDA kernels (a GPU may still be absent)."""
    return bool(load().lapmask_kernels_has_cuda())


def _check(lib: ctypes.CDLL, status: int) -> None:
    if status == _OK:
        return
    msg = lib.lapmask_last_error().decode(errors="replace")
    if status == _INVALID:
        raise ValueError(msg)
    if status == _OOM:
        raise MemoryError(msg)
    if status == _NOT_COMPILED:
        raise KernelsNotAvailableError(msg)
    raise RuntimeError(f"liblapmask_kernels status {status}: {msg}")


def _pair(v: int | tuple[int, ...], name: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, int) else tuple(v) if isinstance(v, (tuple, list)) else ()
    if len(t) != 2 or not all(isinstance(i, int) for i in t):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return t  # type: ignore[return-value]


def _pads(padding: int | tuple[int, ...]) -> tuple[int, int, int, int]:
    """int, (ph, pw) or ONNX-order (top, left, bottom, right)."""
    t = (padding,) * 4 if isinstance(padding, int) else tuple(padding) if isinstance(padding, (tuple, list)) else ()
    if len(t) == 2:
        t = (t[0], t[1], t[0], t[1])
    if len(t) != 4 or not all(isinstance(i, int) for i in t):
        raise ValueError(f"padding must be an int, (ph, pw) or (top, left, bottom, right), got {padding!r}")
    return t  # type: ignore[return-value]


def _require(t: Tensor, name: str, ndim: int, dtype: torch.dtype, device: torch.device) -> None:
    if not isinstance(t, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")  # noqa: TRY004
    if t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}")
    if t.dtype != dtype:
        raise ValueError(f"{name} has dtype {t.dtype}, expected {dtype}; convert with .to({dtype})")
    if t.device != device:
        raise ValueError(f"{name} is on {t.device}, expected {device}")
    if not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous; call .contiguous() first")


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None or t.numel() == 0 else t.data_ptr()


def deform_conv(x: Tensor, weight: Tensor, offset: Tensor, mask: Tensor | None, bias: Tensor | None = None,
                stride: int | tuple[int, int] = 1, padding: int | tuple[int, ...] = 1,
                dilation: int | tuple[int, int] = 1, group: int = 1, offset_group: int = 1) -> Tensor:
    """DynamicDeformConv (modulated deformable conv, ONNX DeformConv-19 semantics) through the C/CUDA kernels.

    Args:
        x (Tensor[B, C, H, W]): float32 / float16 (CPU and CUDA) or float64 (CPU only); all inputs share its dtype.
        weight (Tensor[N, C/group, kh, kw]): runtime filters.
        offset (Tensor[B, offset_group*2*kh*kw, Ho, Wo]): (dy, dx) interleaved per tap.
        mask (Tensor[B, offset_group*kh*kw, Ho, Wo] | None): modulation (already sigmoided); None = all ones.
        bias (Tensor[N] | None).
        padding: int, (ph, pw) or ONNX (top, left, bottom, right). Defaults match ``modulated_deform_conv``.
    Returns:
        Tensor[B, N, Ho, Wo] in x's dtype (fp32 accumulation, rounded once for fp16).
    """
    if not isinstance(x, Tensor):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")  # noqa: TRY004
    device, dtype = x.device, x.dtype
    allowed = _CUDA_CONV_DTYPES if device.type == "cuda" else _CPU_CONV_DTYPES
    if device.type not in ("cpu", "cuda") or dtype not in allowed:
        raise ValueError(f"x: {dtype} on {device.type} is not supported; use one of {allowed} on cpu/cuda")
    for t, name in ((x, "x"), (weight, "weight"), (offset, "offset")):
        _require(t, name, 4, dtype, device)
    (sh, sw), (dh, dw), pads = _pair(stride, "stride"), _pair(dilation, "dilation"), _pads(padding)
    B, C, H, W = x.shape
    N, Cg, kh, kw = weight.shape
    if group < 1 or offset_group < 1 or C % group or N % group or C % offset_group:
        raise ValueError(f"group={group} / offset_group={offset_group} must be >= 1 and divide C={C} (and N={N} "
                         "for group)")
    if Cg * group != C:
        raise ValueError(f"weight has {Cg} input channels per group, x has {C} channels and group={group}")
    lib = load()
    desc = _DeformDesc(B, C, H, W, N, kh, kw, sh, sw, *pads, dh, dw, group, offset_group)
    ho, wo = ctypes.c_int64(), ctypes.c_int64()
    _check(lib, lib.lapmask_deform_conv_output_size(ctypes.byref(desc), ctypes.byref(ho), ctypes.byref(wo)))
    Ho, Wo = ho.value, wo.value
    if tuple(offset.shape) != (B, offset_group * 2 * kh * kw, Ho, Wo):
        raise ValueError(f"offset shape {tuple(offset.shape)} != {(B, offset_group * 2 * kh * kw, Ho, Wo)}")
    if mask is not None:
        _require(mask, "mask", 4, dtype, device)
        if tuple(mask.shape) != (B, offset_group * kh * kw, Ho, Wo):
            raise ValueError(f"mask shape {tuple(mask.shape)} != {(B, offset_group * kh * kw, Ho, Wo)}")
    if bias is not None:
        _require(bias, "bias", 1, dtype, device)
        if bias.shape[0] != N:
            raise ValueError(f"bias has {bias.shape[0]} entries, weight has {N} filters")
    out = torch.empty((B, N, Ho, Wo), dtype=dtype, device=device)
    args = [_ptr(x), _ptr(weight), _ptr(offset), _ptr(mask), _ptr(bias), _ptr(out)]
    if device.type == "cpu":
        _check(lib, lib.lapmask_deform_conv_cpu(ctypes.byref(desc), _DTYPES[dtype], *args))
        return out
    if not lib.lapmask_kernels_has_cuda():
        raise KernelsNotAvailableError("liblapmask_kernels was built without CUDA; rebuild with nvcc on PATH: "
                                       "`python -m lapmask.ops.build_kernels --cuda on --clean`")
    with torch.cuda.device(device):
        size = ctypes.c_size_t()
        _check(lib, lib.lapmask_deform_conv_cuda_workspace_size(ctypes.byref(desc), _DTYPES[dtype],
                                                                ctypes.byref(size)))
        ws = torch.empty(max(size.value, 1), dtype=torch.uint8, device=device)
        stream = torch.cuda.current_stream(device).cuda_stream
        _check(lib, lib.lapmask_deform_conv_cuda(ctypes.byref(desc), _DTYPES[dtype], *args, ws.data_ptr(),
                                                 size.value, stream))
    return out


def matrix_nms_kernel_code(kernel: str | int) -> int:
    """``"gaussian"`` / ``"linear"`` (or their int codes) -> the C code, validated against the contract."""
    if isinstance(kernel, str):
        if kernel not in MATRIX_NMS_KERNELS:
            raise ValueError(f"unknown Matrix NMS kernel {kernel!r}; use one of {sorted(MATRIX_NMS_KERNELS)}")
        return MATRIX_NMS_KERNELS[kernel]
    if kernel not in MATRIX_NMS_KERNELS.values():
        raise ValueError(f"unknown Matrix NMS kernel code {kernel!r}; use {MATRIX_NMS_KERNELS}")
    return int(kernel)


def matrix_nms(masks: Tensor, labels: Tensor, scores: Tensor, kernel: str | int = "gaussian",
               sigma: float = 2.0) -> Tensor:
    """MatrixNMS decay through the C/CUDA kernels (decay only; the caller sorts and does the final TopK).

    Args:
        masks (Tensor[K, ...]): binary masks (float32 / float16 / uint8 / bool 0-1), sorted by descending score.
        labels (Tensor[K]): int32 class indices.
        scores (Tensor[K]): float32, descending; invalid entries are -1 (returned unchanged).
        kernel: "gaussian" | "linear" (or 0 | 1); sigma: multiplies the gaussian exponent.
    Returns:
        Tensor[K] float32: decayed scores.
    """
    if not isinstance(masks, Tensor) or masks.dim() < 1:
        raise ValueError("masks must be a torch.Tensor [K, ...]")
    device = masks.device
    if masks.dtype not in _MASK_DTYPES:
        raise ValueError(f"masks dtype {masks.dtype} is not supported; use one of {_MASK_DTYPES}")
    if not masks.is_contiguous():
        raise ValueError("masks must be contiguous; call .contiguous() first")
    k = masks.shape[0]
    _require(scores, "scores", 1, torch.float32, device)
    _require(labels, "labels", 1, torch.int32, device)
    if scores.shape[0] != k or labels.shape[0] != k:
        raise ValueError(f"masks {tuple(masks.shape)}, labels {tuple(labels.shape)}, scores {tuple(scores.shape)}: "
                         "expected [K, ...], [K], [K]")
    code = matrix_nms_kernel_code(kernel)
    pixels = math.prod(masks.shape[1:])
    flat = masks.view(torch.uint8) if masks.dtype == torch.bool else masks
    dt = _DTYPES[flat.dtype]
    out = torch.empty(k, dtype=torch.float32, device=device)
    lib = load()
    if device.type == "cpu":
        _check(lib, lib.lapmask_matrix_nms_cpu(k, pixels, dt, _ptr(flat), _ptr(scores), _ptr(labels), code,
                                               float(sigma), _ptr(out)))
        return out
    if device.type != "cuda":
        raise ValueError(f"masks on {device} are not supported; use cpu or cuda")
    if not lib.lapmask_kernels_has_cuda():
        raise KernelsNotAvailableError("liblapmask_kernels was built without CUDA; rebuild with nvcc on PATH: "
                                       "`python -m lapmask.ops.build_kernels --cuda on --clean`")
    with torch.cuda.device(device):
        size = ctypes.c_size_t()
        _check(lib, lib.lapmask_matrix_nms_cuda_workspace_size(k, pixels, ctypes.byref(size)))
        ws = torch.empty(max(size.value, 1), dtype=torch.uint8, device=device)
        stream = torch.cuda.current_stream(device).cuda_stream
        _check(lib, lib.lapmask_matrix_nms_cuda(k, pixels, dt, _ptr(flat), _ptr(scores), _ptr(labels), code,
                                                float(sigma), _ptr(out), ws.data_ptr(), size.value, stream))
    return out


def float_to_half_bits(values: Tensor) -> Tensor:
    """The kernels' float -> fp16 rounding (test helper). values: float32 CPU tensor -> int16 bit patterns."""
    _require(values, "values", values.dim(), torch.float32, torch.device("cpu"))
    out = torch.empty(values.shape, dtype=torch.int16)
    lib = load()
    _check(lib, lib.lapmask_float_to_half_bits(_ptr(values), _ptr(out), values.numel()))
    return out


def half_bits_to_float(bits: Tensor) -> Tensor:
    """The kernels' fp16 -> float widening (test helper). bits: int16 CPU tensor -> float32."""
    _require(bits, "bits", bits.dim(), torch.int16, torch.device("cpu"))
    out = torch.empty(bits.shape, dtype=torch.float32)
    lib = load()
    _check(lib, lib.lapmask_half_bits_to_float(_ptr(bits), _ptr(out), bits.numel()))
    return out
