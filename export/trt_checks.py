"""TensorRT checks that need no TensorRT: engine sidecars, plugin libraries and the custom-node inventory.

* Engine sidecar (contracts.md section 5): ``<engine>.json`` = the ONNX metadata + TensorRT version, GPU name and
  compute capability, plugin library hash, ONNX hash, optimisation profiles. ``check_engine_sidecar`` compares it
  with the running TensorRT / GPU / plugin library BEFORE an engine is deserialized (TensorRT would otherwise fail
  with an opaque "version tag" or "plugin not found" error, or run a stale plugin).
* Plugin library inventory: what ``liblapmask_trt_plugins.so`` registers, read from the library itself
  (``lapmaskTrtPluginsManifest``; loading it needs no TensorRT) or from the manifest JSON the build writes beside
  it; ``parse_plugin_sources`` reads the same facts from the C++ sources (for machines without a build).
* ``inventory_problems``: every custom node (domain ``lapmask``) of an ONNX graph has a creator of the same name
  and version in the plugin namespace; ``contract_problems``: the creators agree with ``lapmask.ops.contract``.

Torch-free (json/hashlib/ctypes; onnx only for reading graphs).
"""
from __future__ import annotations

import ctypes
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export.metadata import file_digest, read_sidecar, validate_metadata

REPO_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SOURCES = REPO_ROOT / "trt_plugins" / "plugins"
PLUGIN_LIBRARY_NAME = "liblapmask_trt_plugins.so"
PLUGIN_LIBRARY_ENV = "LAPMASK_TRT_PLUGINS"  # default plugin library for build-engine and the TRT predictor
STATIC_REGISTRATION_ENV = "LAPMASK_TRT_STATIC_REGISTRATION"  # "0": the library registers via getCreators only
STANDARD_DOMAINS = ("", "ai.onnx")
ENGINE_KEYS = ("tensorrt_version", "gpu_name", "compute_capability", "onnx_sha256", "profiles",
               "plugin_library_sha256")
#: ONNX attribute type -> TensorRT plugin field type (what the ONNX parser passes; onnx-tensorrt loadFields).
FIELD_TYPES = {"int": "INT32", "ints": "INT32", "float": "FLOAT32", "string": "CHAR"}
#: dtypes the contract allows that a TensorRT plugin tensor cannot have (PluginTensorDesc excludes kUINT8).
TRT_UNSUPPORTED_DTYPES = {"uint8": "TensorRT plugin I/O excludes DataType::kUINT8"}


class EngineCompatibilityError(RuntimeError):
    """An engine that must not be deserialized here; the message lists every mismatch and the fix."""


class PluginLibraryError(RuntimeError):
    """A plugin library that is missing, not a lapmask plugin library, stale, or lacks a needed creator."""


@dataclass(frozen=True)
class CustomNode:
    """A node outside the standard ONNX domains."""

    name: str
    domain: str
    op_type: str
    version: int | None  # the domain's opset_import version
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CreatorInfo:
    """One plugin creator: identity, advertised fields {name: (type, length)}, probed I/O type combinations."""

    name: str
    version: str
    namespace: str
    fields: dict[str, tuple[str, int]] = field(default_factory=dict)
    combinations: dict[int, list[tuple[str, ...]]] = field(default_factory=dict)


# ---- custom nodes of an ONNX graph ----

def custom_nodes(model: Any) -> list[CustomNode]:
    """Nodes of ``model`` (an onnx.ModelProto) outside the default domain, with their domain's opset version."""
    versions = {o.domain: int(o.version) for o in model.opset_import}
    return [CustomNode(n.name or n.output[0], n.domain, n.op_type, versions.get(n.domain),
                       tuple(a.name for a in n.attribute))
            for n in model.graph.node if n.domain not in STANDARD_DOMAINS]


def onnx_custom_nodes(path: str | Path) -> list[CustomNode]:
    """``custom_nodes`` of an ONNX file (weights are not loaded)."""
    import onnx

    return custom_nodes(onnx.load(str(path), load_external_data=False))


def inventory_problems(nodes: Sequence[CustomNode], creators: Sequence[CreatorInfo], library: str = "the plugin "
                       "library") -> list[str]:
    """Custom nodes without a matching creator (name = op type, version = domain opset, namespace = contract's)."""
    from lapmask.ops.contract import DOMAIN, PLUGIN_NAMESPACE

    problems = []
    have = {(c.name, c.version, c.namespace): c for c in creators}
    listed = ", ".join(f"{c.namespace}::{c.name} v{c.version}" for c in creators) or "none"
    for n in nodes:
        if n.domain != DOMAIN:
            problems.append(f"node {n.name!r} is {n.domain}::{n.op_type}: domain {n.domain!r} has no TensorRT "
                            f"plugins here (only {DOMAIN!r}); re-export the model")
            continue
        c = have.get((n.op_type, str(n.version), PLUGIN_NAMESPACE))
        if c is None:
            problems.append(f"node {n.name!r} ({n.domain}::{n.op_type}, version {n.version}) has no creator in "
                            f"{library} (it has: {listed}); rebuild the library from this checkout or re-export")
            continue
        unknown = [a for a in n.attributes if a not in c.fields]
        if unknown:
            problems.append(f"node {n.name!r}: attributes {unknown} are not fields of the {c.name} creator")
    return problems


# ---- the plugin library ----

def manifest_path(library: str | Path) -> Path:
    """``liblapmask_trt_plugins.so`` -> ``liblapmask_trt_plugins.manifest.json`` (written by the build)."""
    p = Path(library)
    return p.with_name(p.name.split(".so")[0] + ".manifest.json")


def read_manifest(library: str | Path) -> dict[str, Any]:
    """The manifest of a plugin library: asked from the library itself, else the JSON file beside it.

    Loading the library runs no TensorRT code; static registration is switched off for this process first so a
    later ``load_library`` of the same file is not refused as a duplicate.
    """
    lib = Path(library)
    if not lib.is_file():
        raise PluginLibraryError(f"plugin library not found: {lib}; build it with `cmake -S . -B build && cmake "
                                 f"--build build --target lapmask_trt_plugins` (TensorRT headers needed, see "
                                 f"trt_plugins/plugins/README.md)")
    os.environ.setdefault(STATIC_REGISTRATION_ENV, "0")
    try:
        handle = ctypes.CDLL(str(lib.resolve()), mode=ctypes.RTLD_LOCAL)
        fn = handle.lapmaskTrtPluginsManifest
        fn.restype = ctypes.c_char_p
        return json.loads(fn().decode())
    except (OSError, AttributeError) as e:
        side = manifest_path(lib)
        if side.is_file():
            return json.loads(side.read_text())
        raise PluginLibraryError(f"{lib} is not a lapmask plugin library (no lapmaskTrtPluginsManifest: {e})") from e


def creators_from_manifest(manifest: Mapping[str, Any]) -> list[CreatorInfo]:
    out = []
    for c in manifest.get("creators", []):
        fields = {f["name"]: (f["type"], int(f["length"])) for f in c.get("fields", [])}
        combos = {int(k): [tuple(x) for x in v] for k, v in c.get("combinations", {}).items()}
        out.append(CreatorInfo(c["name"], str(c["version"]), c["namespace"], fields, combos))
    return out


def library_creators(library: str | Path) -> list[CreatorInfo]:
    return creators_from_manifest(read_manifest(library))


_NAME_RE = re.compile(r'kPLUGIN_NAME\{"(\w+)"\}')
_VERSION_RE = re.compile(r'kPLUGIN_VERSION\{"(\w+)"\}')
_NAMESPACE_RE = re.compile(r'kPLUGIN_NAMESPACE\{"(\w+)"\}')
_FIELD_RE = re.compile(r'mFieldNames\.add\("(\w+)",\s*PluginFieldType::k(\w+),\s*(\d+)\)')


def parse_plugin_sources(root: str | Path = PLUGIN_SOURCES) -> list[CreatorInfo]:
    """Creators as written in the C++ sources (one ``*Plugin.cpp`` per plugin folder); no build needed."""
    root = Path(root)
    ns = _NAMESPACE_RE.findall((root / "common" / "pluginCommon.h").read_text())
    out = []
    for src in sorted(root.glob("*Plugin/*Plugin.cpp")):
        text = src.read_text()
        names, versions = _NAME_RE.findall(text), _VERSION_RE.findall(text)
        if len(names) != 1 or len(versions) != 1 or len(ns) != 1:
            raise ValueError(f"{src}: expected one kPLUGIN_NAME / kPLUGIN_VERSION (and one kPLUGIN_NAMESPACE)")
        fields = {n: (t, int(k)) for n, t, k in _FIELD_RE.findall(text)}
        out.append(CreatorInfo(names[0], versions[0], ns[0], fields))
    return out


def contract_problems(creators: Sequence[CreatorInfo], check_combinations: bool = True) -> list[str]:
    """Creators vs ``lapmask.ops.contract``: one per op with its version and namespace, one field per attribute
    (ONNX type -> field type as the ONNX parser converts it), and I/O types inside the contract's dtypes, with every
    contract dtype of the first input covered unless TensorRT cannot carry it (``TRT_UNSUPPORTED_DTYPES``)."""
    from lapmask.ops.contract import OPS

    problems = []
    by_name = {c.name: c for c in creators}
    for extra in sorted(set(by_name) - set(OPS)):
        problems.append(f"creator {extra} is not in the op contract")
    for op in OPS.values():
        c = by_name.get(op.plugin_name)
        if c is None:
            problems.append(f"no creator for {op.plugin_name}")
            continue
        if (c.version, c.namespace) != (op.plugin_version, op.plugin_namespace):
            problems.append(f"{c.name}: version/namespace {c.version}/{c.namespace}, contract "
                            f"{op.plugin_version}/{op.plugin_namespace}")
        attrs = {a.name: a for a in op.attributes}
        if set(c.fields) != set(attrs):
            problems.append(f"{c.name}: fields {sorted(c.fields)} != contract attributes {sorted(attrs)}")
        for name, a in attrs.items():
            if name in c.fields and c.fields[name][0] != FIELD_TYPES[a.type]:
                problems.append(f"{c.name}.{name}: field type {c.fields[name][0]}, ONNX {a.type} arrives as "
                                f"{FIELD_TYPES[a.type]}")
            sample = a.default if a.default is not None else a.lapmask_value
            if name in c.fields and a.type == "ints" and isinstance(sample, list) and c.fields[name][1] != len(sample):
                problems.append(f"{c.name}.{name}: field length {c.fields[name][1]}, contract {len(sample)}")
        if check_combinations:
            problems += _combination_problems(op, c)
    return problems


def _combination_problems(op: Any, c: CreatorInfo) -> list[str]:
    problems = []
    required = sum(not t.optional for t in op.inputs)
    counts = set(range(required, len(op.inputs) + 1))
    if set(c.combinations) != counts:
        problems.append(f"{c.name}: accepts input counts {sorted(c.combinations)}, contract {sorted(counts)}")
    for n, combos in c.combinations.items():
        tensors = list(op.inputs[:n]) + list(op.outputs)
        if not combos:
            problems.append(f"{c.name}: no type combination accepted with {n} inputs")
        for combo in combos:
            bad = [f"{t.name}={d}" for t, d in zip(tensors, combo) if d not in t.dtypes]
            if bad or len(combo) != len(tensors):
                problems.append(f"{c.name}: accepts {combo} with {n} inputs, outside the contract ({bad})")
        for d in op.inputs[0].dtypes:
            if d not in TRT_UNSUPPORTED_DTYPES and not any(combo[0] == d for combo in combos):
                problems.append(f"{c.name}: {op.inputs[0].name} as {d} is in the contract but not accepted")
    return problems


def find_plugin_library(explicit: str | Path | None = None, sidecar: Mapping[str, Any] | None = None) -> Path | None:
    """The plugin library to use: the argument, $LAPMASK_TRT_PLUGINS, the path recorded in an engine sidecar, or
    the default build output ``build/lib/liblapmask_trt_plugins.so``; None when none exists."""
    if explicit:
        if not Path(explicit).is_file():
            raise PluginLibraryError(f"plugin library not found: {explicit}")
        return Path(explicit)
    candidates = [os.environ.get(PLUGIN_LIBRARY_ENV), (sidecar or {}).get("plugin_library_path"),
                  REPO_ROOT / "build" / "lib" / PLUGIN_LIBRARY_NAME]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    return None


# ---- engine sidecar ----

def read_engine_sidecar(engine: str | Path, check_file: bool = True) -> dict[str, Any]:
    """The sidecar of an engine, validated (lapmask metadata + the engine keys); raises EngineCompatibilityError.

    ``check_file``: the engine's size and SHA-256 must match what the sidecar recorded.
    """
    engine = Path(engine)
    if not engine.is_file():
        raise FileNotFoundError(f"engine not found: {engine}")
    meta = read_sidecar(engine)
    if meta is None:
        raise EngineCompatibilityError(f"{engine} has no sidecar {engine.name}.json; engines are only usable with "
                                       "the sidecar `lapmask build-engine` writes (rebuild the engine)")
    validate_metadata(meta, f"{engine}.json")
    missing = [k for k in ENGINE_KEYS if k not in meta]
    if missing:
        raise EngineCompatibilityError(f"{engine}.json lacks {', '.join(missing)}: not an engine sidecar; rebuild "
                                       "with `lapmask build-engine`")
    if check_file and (meta.get("file_bytes") != engine.stat().st_size or
                       meta.get("file_sha256") != file_digest(engine)):
        raise EngineCompatibilityError(f"{engine} changed after its sidecar was written (size/SHA-256 differ); "
                                       "rebuild it with `lapmask build-engine`")
    return meta


def sidecar_problems(meta: Mapping[str, Any], *, tensorrt_version: str, gpu_name: str, compute_capability: str,
                     plugin_library: str | Path | None = None, allow_other_gpu: bool = False) -> list[str]:
    """Why the engine described by ``meta`` cannot run here (empty list: it can).

    Engines are tied to the exact TensorRT version and to the GPU's compute capability; another GPU model of the
    same capability is refused too unless ``allow_other_gpu`` (TensorRT only warns, but tactics were timed there).
    """
    problems = []
    if str(meta["tensorrt_version"]) != tensorrt_version:
        problems.append(f"built with TensorRT {meta['tensorrt_version']}, this is TensorRT {tensorrt_version}")
    if str(meta["compute_capability"]) != compute_capability:
        problems.append(f"built for compute capability {meta['compute_capability']} ({meta['gpu_name']}), this "
                        f"GPU is {gpu_name} ({compute_capability})")
    elif str(meta["gpu_name"]) != gpu_name and not allow_other_gpu:
        problems.append(f"built on {meta['gpu_name']}, this GPU is {gpu_name} (same compute capability "
                        f"{compute_capability}; pass allow_other_gpu=True to run it anyway)")
    want = meta.get("plugin_library_sha256")
    if want:
        if plugin_library is None:
            problems.append(f"the engine uses lapmask plugins ({meta.get('plugin_library', PLUGIN_LIBRARY_NAME)}, "
                            f"sha256 {want[:12]}); give the library (--plugins / ${PLUGIN_LIBRARY_ENV})")
        elif file_digest(plugin_library) != want:
            problems.append(f"plugin library {plugin_library} is stale: sha256 {file_digest(plugin_library)[:12]}, "
                            f"the engine was built with {want[:12]}")
    return problems


def check_engine_sidecar(meta: Mapping[str, Any], engine: str | Path, **runtime: Any) -> None:
    """Raise EngineCompatibilityError listing ``sidecar_problems`` (arguments as there) and how to fix them."""
    problems = sidecar_problems(meta, **runtime)
    if problems:
        onnx = meta.get("onnx_file", "MODEL.onnx")
        raise EngineCompatibilityError(f"{engine} cannot run here:\n  - " + "\n  - ".join(problems)
                                       + f"\nrebuild it on this machine: lapmask build-engine {onnx} --out {engine}")


# ---- plugin READMEs: the I/O and attribute tables come from the contract ----

README_BEGIN = "<!-- contract: generated from lapmask/ops/contract.py; do not edit -->"
README_END = "<!-- end of contract -->"


def readme_block(op_name: str) -> str:
    """The contract section of a plugin README (OPS.md's section for the op, between markers)."""
    from lapmask.ops.contract import OPS, render_op

    return f"{README_BEGIN}\n\n{render_op(OPS[op_name])}\n{README_END}"


def readme_problems(root: str | Path = PLUGIN_SOURCES) -> list[str]:
    """Plugin READMEs whose contract block differs from ``readme_block`` (fix: ``sync_readmes``)."""
    problems = []
    for c in parse_plugin_sources(root):
        text = _readme_for(root, c.name).read_text()
        if readme_block(c.name) not in text:
            problems.append(f"{_readme_for(root, c.name)}: contract block is out of date (python -m "
                            "export.trt_checks --sync-readmes)")
    return problems


def sync_readmes(root: str | Path = PLUGIN_SOURCES) -> list[Path]:
    """Rewrite the contract block of every plugin README; returns the files changed."""
    changed = []
    for c in parse_plugin_sources(root):
        path = _readme_for(root, c.name)
        text = path.read_text()
        i, j = text.find(README_BEGIN), text.find(README_END)
        if i < 0 or j < 0:
            raise ValueError(f"{path}: no contract markers")
        new = text[:i] + readme_block(c.name) + text[j + len(README_END):]
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def _readme_for(root: str | Path, plugin: str) -> Path:
    folder = {"DynamicDeformConv": "dynamicDeformConvPlugin", "MatrixNMS": "matrixNMSPlugin"}[plugin]
    return Path(root) / folder / "README.md"


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--sync-readmes"]:
        print("\n".join(str(p) for p in sync_readmes()) or "plugin READMEs are up to date")
    elif sys.argv[1:2] == ["--manifest"] and len(sys.argv) == 3:
        print(json.dumps(read_manifest(sys.argv[2]), indent=2))
    else:
        print("usage: python -m export.trt_checks --sync-readmes | --manifest LIB", file=sys.stderr)
        raise SystemExit(2)
