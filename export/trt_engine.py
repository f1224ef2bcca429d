"""Build a TensorRT engine from an exported lapmask ONNX (``lapmask build-engine``), TensorRT Python API.

* Precision comes from the graph: the network is strongly typed, so an fp16 export gives an fp16 engine and the
  fp32 islands the exporter kept (Matrix NMS, areas; spec 10.8) stay fp32. No --fp16 flag exists on purpose.
* Custom nodes (domain ``lapmask``) need the plugin library: its creators are checked against the graph BEFORE
  TensorRT is touched (``export.trt_checks``), then again in TensorRT's registry after ``load_library``.
* The ONNX parser finds plugins by op type + node attributes ``plugin_version`` / ``plugin_namespace`` (default
  "1" / "") and ignores the node's domain; the exported file stays as the contract says and the copy given to the
  parser gets both attributes (``prepare_for_tensorrt``). An empty optional DeformConv bias (``B`` = "") becomes a
  zero tensor [N] of W's type, so the plugin never sees a null input.
* One optimisation profile for ``image`` [B, 3, H, W]: fixed exports pin it; dynamic ones take min/opt/max from
  the flags or, by default, from the metadata's test sizes.
* Output: the plain engine (exactly TensorRT's bytes) + sidecar ``<engine>.json`` (contracts.md section 5).

Imports neither torch nor lapmask.model; tensorrt and cuda-python are imported when used.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from export.metadata import file_digest, read_onnx_metadata, write_sidecar
from export.trt_checks import (
    STATIC_REGISTRATION_ENV,
    PluginLibraryError,
    custom_nodes,
    find_plugin_library,
    inventory_problems,
    library_creators,
)

INPUT_IMAGE = "image"
DEFAULT_WORKSPACE_MB = 4096
_LOADED_LIBRARIES: dict[str, Any] = {}  # plugin library path -> TensorRT handle (load each file once per process)


class TensorRTMissingError(RuntimeError):
    """The tensorrt Python package is not importable."""


class NoGpuError(RuntimeError):
    """No usable CUDA device (or no cuda-python to ask)."""


def import_tensorrt() -> Any:
    """``import tensorrt`` with a fix-it message."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise TensorRTMissingError(
            f"TensorRT's Python package is not installed ({e}): pip install tensorrt (or tensorrt-cu12 / "
            "tensorrt-cu13 to match your CUDA); it needs an NVIDIA GPU and driver") from e
    return trt


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    compute_capability: str  # "8.6"


def gpu_info(device: int = 0) -> GpuInfo:
    """Name and compute capability of CUDA device ``device`` (cuda-python); raises NoGpuError."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError as e:
        raise NoGpuError(f"cuda-python is not installed ({e}): pip install cuda-python") from e
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or count == 0:
        why = cudart.cudaGetErrorString(err)[1].decode() if err != cudart.cudaError_t.cudaSuccess else "0 devices"
        raise NoGpuError(f"no CUDA GPU available ({why}); TensorRT engines are built and run on an NVIDIA GPU")
    if not 0 <= device < count:
        raise NoGpuError(f"CUDA device {device} does not exist ({count} device(s))")
    err, prop = cudart.cudaGetDeviceProperties(device)
    if err != cudart.cudaError_t.cudaSuccess:
        raise NoGpuError(f"cudaGetDeviceProperties({device}) failed: {cudart.cudaGetErrorString(err)[1].decode()}")
    name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
    return GpuInfo(device, name.rstrip("\x00"), f"{prop.major}.{prop.minor}")


def parse_hw(text: str | None, flag: str) -> tuple[int, int] | None:
    """"800x1344" -> (800, 1344); None stays None; anything else is a ValueError naming the flag."""
    if text is None:
        return None
    parts = text.lower().replace("*", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts) or min(int(p) for p in parts) <= 0:
        raise ValueError(f"{flag} {text!r}: give HxW with positive integers, e.g. {flag} 800x1344")
    return int(parts[0]), int(parts[1])


@dataclass(frozen=True)
class Profile:
    """Optimisation profile of the image input, as (H, W) triples; ``batch`` is the export's fixed batch."""

    min: tuple[int, int]
    opt: tuple[int, int]
    max: tuple[int, int]
    batch: int = 1

    def shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple((self.batch, 3, *hw) for hw in (self.min, self.opt, self.max))

    def covers(self, h: int, w: int) -> bool:
        return self.min[0] <= h <= self.max[0] and self.min[1] <= w <= self.max[1]


def _ceil(v: int, d: int) -> int:
    return -(-v // d) * d


def resolve_profile(meta: dict[str, Any], min_hw: tuple[int, int] | None = None,
                    opt_hw: tuple[int, int] | None = None, max_hw: tuple[int, int] | None = None) -> Profile:
    """The image profile from the ONNX metadata and the flags (multiples of the size divisibility, min <= opt <= max).

    Dynamic exports default to: max = the largest resized image either way up (ceil32(max_size_test) square),
    opt = a landscape test image (ceil32(min_size_test) x ceil32(4/3 min_size_test), capped by max), min = 32x32.
    """
    d = int(meta.get("size_divisibility", 32))
    batch = int(meta.get("batch", 1))
    if meta.get("input_height") and meta.get("input_width"):
        fixed = (int(meta["input_height"]), int(meta["input_width"]))
        for flag, hw in (("--min-shape", min_hw), ("--opt-shape", opt_hw), ("--max-shape", max_hw)):
            if hw is not None and hw != fixed:
                raise ValueError(f"{flag} {hw[0]}x{hw[1]}: this ONNX was exported for a fixed {fixed[0]}x{fixed[1]} "
                                 "input; drop the shape flags or re-export with --dynamic")
        return Profile(fixed, fixed, fixed, batch)
    short, long_ = int(meta["min_size_test"]), int(meta["max_size_test"])
    mx = max_hw or (_ceil(long_, d), _ceil(long_, d))
    opt = opt_hw or (min(_ceil(short, d), mx[0]), min(_ceil(short * 4 // 3, d), mx[1]))
    mn = min_hw or (min(d, opt[0]), min(d, opt[1]))
    for flag, hw in (("--min-shape", mn), ("--opt-shape", opt), ("--max-shape", mx)):
        if hw[0] % d or hw[1] % d:
            raise ValueError(f"{flag} {hw[0]}x{hw[1]}: H and W must be multiples of {d} (the padded input size), "
                             f"e.g. {_ceil(hw[0], d)}x{_ceil(hw[1], d)}")
    if not (mn[0] <= opt[0] <= mx[0] and mn[1] <= opt[1] <= mx[1]):
        raise ValueError(f"profile min {mn[0]}x{mn[1]} <= opt {opt[0]}x{opt[1]} <= max {mx[0]}x{mx[1]} must hold for "
                         "H and W")
    return Profile(mn, opt, mx, batch)


def prepare_for_tensorrt(model: Any) -> Any:
    """A copy of ``model`` (onnx.ModelProto) the TensorRT ONNX parser can map to the lapmask plugins: custom nodes
    get ``plugin_namespace`` / ``plugin_version`` attributes and an empty DeformConv bias becomes zeros [N]."""
    import onnx
    from onnx import TensorProto, helper

    from lapmask.ops.contract import DOMAIN, DYNAMIC_DEFORM_CONV, OPS, PLUGIN_NAMESPACE

    m = onnx.ModelProto()
    m.CopyFrom(model)
    versions = {o.domain: int(o.version) for o in m.opset_import}
    if DOMAIN in versions and versions.get("", versions.get("ai.onnx", 0)) < 15:
        raise ValueError("plugin graphs need default-domain opset >= 15 here (Shape start/end, CastLike); re-export "
                         "with --opset 19")
    new_nodes = []
    for i, n in enumerate(m.graph.node):
        if n.domain == DOMAIN and n.op_type in OPS:
            present = {a.name for a in n.attribute}
            if "plugin_namespace" not in present:
                n.attribute.append(helper.make_attribute("plugin_namespace", PLUGIN_NAMESPACE))
            if "plugin_version" not in present:
                n.attribute.append(helper.make_attribute("plugin_version", str(versions.get(DOMAIN, 1))))
            bias = 3  # DeformConv-19 input order X, W, offset, B, mask
            if n.op_type == DYNAMIC_DEFORM_CONV.name and len(n.input) > bias + 1 and not n.input[bias]:
                w, p = n.input[1], f"lapmask_trt_zero_bias_{i}"
                zero = helper.make_tensor(f"{p}_value", TensorProto.FLOAT, [1], [0.0])
                new_nodes += [
                    helper.make_node("Shape", [w], [f"{p}_shape"], name=f"{p}_shape", start=0, end=1),
                    helper.make_node("ConstantOfShape", [f"{p}_shape"], [f"{p}_f32"], name=f"{p}_zeros", value=zero),
                    helper.make_node("CastLike", [f"{p}_f32", w], [p], name=f"{p}_cast")]
                n.input[bias] = p
        new_nodes.append(n)
    del m.graph.node[:]
    m.graph.node.extend(new_nodes)
    return m


@dataclass
class BuildOptions:
    min_hw: tuple[int, int] | None = None
    opt_hw: tuple[int, int] | None = None
    max_hw: tuple[int, int] | None = None
    timing_cache: str | None = None
    plugins: str | None = None
    workspace_mb: int = DEFAULT_WORKSPACE_MB
    device: int = 0
    verbose: bool = False


@dataclass
class BuildResult:
    path: Path
    sidecar: Path
    seconds: float
    bytes: int
    profile: Profile
    gpu: GpuInfo
    tensorrt_version: str
    precision: str
    notes: list[str] = field(default_factory=list)


def load_plugin_library(trt: Any, registry: Any, library: str | Path) -> Any:
    """``registry.load_library`` once per file and process, with static registration off (the library would
    otherwise register its creators twice and loadLibrary refuses duplicates)."""
    key = str(Path(library).resolve())
    if key not in _LOADED_LIBRARIES:
        os.environ[STATIC_REGISTRATION_ENV] = "0"
        handle = registry.load_library(key)
        if handle is None:
            raise PluginLibraryError(f"TensorRT could not load the plugin library {key} (see the TensorRT log)")
        _LOADED_LIBRARIES[key] = handle
    return _LOADED_LIBRARIES[key]


def _check_registry(registry: Any, nodes: list, library: Path) -> None:
    from lapmask.ops.contract import PLUGIN_NAMESPACE

    missing = sorted({f"{n.op_type} v{n.version}" for n in nodes
                      if registry.get_creator(n.op_type, str(n.version), PLUGIN_NAMESPACE) is None})
    if missing:
        raise PluginLibraryError(f"after loading {library}, TensorRT's registry has no creator for {', '.join(missing)} "
                                 f"in namespace {PLUGIN_NAMESPACE!r}")


def _parse(trt: Any, network: Any, logger: Any, model: Any, onnx_path: Path) -> None:
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.SerializeToString(), str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(f"TensorRT's ONNX parser rejected {onnx_path}:\n  - " + "\n  - ".join(errors))


def build_engine(onnx_path: str | Path, out: str | Path, options: BuildOptions | None = None) -> BuildResult:
    """Build ``out`` (+ ``out``.json) from an exported lapmask ONNX; see the module docstring."""
    import onnx

    opts = options or BuildOptions()
    onnx_path, out = Path(onnx_path), Path(out)
    if opts.workspace_mb <= 0:
        raise ValueError(f"--workspace {opts.workspace_mb}: give the TensorRT workspace limit in MB (> 0)")
    meta = read_onnx_metadata(onnx_path)  # FileNotFoundError / MetadataError with the fix
    profile = resolve_profile(meta, opts.min_hw, opts.opt_hw, opts.max_hw)
    model = onnx.load(str(onnx_path))
    nodes = custom_nodes(model)
    library = find_plugin_library(opts.plugins) if (nodes or opts.plugins) else None
    if nodes:
        if library is None:
            raise PluginLibraryError(
                f"{onnx_path} has custom nodes ({', '.join(sorted({n.op_type for n in nodes}))}); give the plugin "
                "library with --plugins build/lib/liblapmask_trt_plugins.so (build: trt_plugins/plugins/README.md)")
        problems = inventory_problems(nodes, library_creators(library), str(library))
        if problems:
            raise PluginLibraryError("the plugin library cannot serve this graph:\n  - " + "\n  - ".join(problems))
    trt = import_tensorrt()
    gpu = gpu_info(opts.device)
    t0 = time.perf_counter()
    logger = trt.Logger(trt.Logger.VERBOSE if opts.verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    if library is not None:
        load_plugin_library(trt, builder.get_plugin_registry(), library)
        _check_registry(builder.get_plugin_registry(), nodes, library)
    # Strongly typed: TensorRT 10 needs the flag; TensorRT 11 always is (the flag is deprecated and ignored).
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    network = builder.create_network(0 if strongly_typed is None else 1 << int(strongly_typed))
    _parse(trt, network, logger, prepare_for_tensorrt(model), onnx_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_mb << 20)
    trt_profile = builder.create_optimization_profile()
    trt_profile.set_shape(INPUT_IMAGE, *profile.shapes())
    config.add_optimization_profile(trt_profile)
    cache_path = Path(opts.timing_cache) if opts.timing_cache else None
    if cache_path is not None:
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT could not build an engine from {onnx_path} (see the TensorRT log above; "
                           "--verbose shows more)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(plan))
    if cache_path is not None:
        cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    seconds = time.perf_counter() - t0
    engine_meta = {
        **meta, "artefact": "tensorrt-engine", "tensorrt_version": trt.__version__, "gpu_name": gpu.name,
        "compute_capability": gpu.compute_capability, "onnx_file": onnx_path.name,
        "onnx_sha256": file_digest(onnx_path), "plugin_library": library.name if library else None,
        "plugin_library_path": str(library.resolve()) if library else None,
        "plugin_library_sha256": file_digest(library) if library else None,
        "profiles": [{"input": INPUT_IMAGE, **{k: list(v) for k, v in zip(("min", "opt", "max"), profile.shapes())}}],
        "strongly_typed": True, "workspace_mb": opts.workspace_mb, "build_seconds": round(seconds, 2),
    }
    sidecar = write_sidecar(out, engine_meta)
    return BuildResult(out, sidecar, seconds, out.stat().st_size, profile, gpu, trt.__version__,
                       str(meta["precision"]), [f"profile {asdict(profile)}"])
