"""build_engine's orchestration against a stand-in ``tensorrt`` module that records every call (the real thing
needs a GPU): the order of checks, the prepared graph the parser gets, the profile, workspace, timing cache,
plugin loading and the sidecar. The real API is exercised by test_trt_engine_parity.py where TensorRT exists."""
from __future__ import annotations

import json
import sys
import types

import onnx
import pytest
from trt_testlib import tiny_onnx


class Recorder(dict):
    pass


def fake_tensorrt(rec: Recorder, *, creators=None, parse_ok=True, plan=b"PLAN-BYTES"):
    """A module with the slice of the TensorRT Python API that export.trt_engine uses."""
    import os

    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.99.1"

    class Logger:
        WARNING, VERBOSE = 2, 4

        def __init__(self, level):
            rec["log_level"] = level

    class Registry:
        def __init__(self):
            self.creators = set()

        def load_library(self, path):
            rec.setdefault("loaded", []).append((path, os.environ.get("LAPMASK_TRT_STATIC_REGISTRATION")))
            self.creators |= set(creators if creators is not None else
                                 {("DynamicDeformConv", "1", "lapmask"), ("MatrixNMS", "1", "lapmask")})
            return object()

        def get_creator(self, name, version, namespace=""):
            return object() if (name, version, namespace) in self.creators else None

    class Cache:
        def __init__(self, data):
            self.data = data

        def serialize(self):
            return b"CACHE:" + self.data

    class Config:
        def set_memory_pool_limit(self, pool, size):
            rec["workspace"] = (pool, size)

        def add_optimization_profile(self, profile):
            rec["profile"] = profile.shapes

        def create_timing_cache(self, data):
            rec["cache_in"] = bytes(data)
            return Cache(bytes(data))

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache

        def get_timing_cache(self):
            return self.cache

    class Profile:
        def set_shape(self, name, mn, opt, mx):
            self.shapes = {name: (tuple(mn), tuple(opt), tuple(mx))}

    class Builder:
        def __init__(self, logger):
            self.registry = Registry()

        def get_plugin_registry(self):
            return self.registry

        def create_network(self, flags):
            rec["network_flags"] = flags
            return object()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            rec["built"] = True
            return plan

    class OnnxParser:
        num_errors = 0 if parse_ok else 1

        def __init__(self, network, logger):
            pass

        def parse(self, data, path):
            rec["parsed"] = onnx.load_from_string(data)
            return parse_ok

        def get_error(self, i):
            return "In node 3 (importFallbackPluginImporter): Plugin not found"

    trt.Logger, trt.Builder, trt.OnnxParser = Logger, Builder, OnnxParser
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=0)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
    return trt


@pytest.fixture
def env(monkeypatch):
    import export.trt_engine as te

    rec = Recorder()
    monkeypatch.setattr(te, "gpu_info", lambda device=0: te.GpuInfo(device, "Fake GPU", "9.0"))
    monkeypatch.setattr(te, "_LOADED_LIBRARIES", {})
    monkeypatch.delenv("LAPMASK_TRT_STATIC_REGISTRATION", raising=False)

    def install(**kw):
        monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(rec, **kw))
        return rec
    return install


def test_standard_graph(env, tmp_path):
    from export.metadata import file_digest
    from export.trt_checks import read_engine_sidecar
    from export.trt_engine import BuildOptions, build_engine

    rec = env()
    onnx_path = tiny_onnx(tmp_path / "s.onnx")
    cache = tmp_path / "t.cache"
    cache.write_bytes(b"old")
    r = build_engine(onnx_path, tmp_path / "out" / "s.engine",
                     BuildOptions(max_hw=(320, 320), workspace_mb=64, timing_cache=str(cache)))
    assert r.path.read_bytes() == b"PLAN-BYTES" and r.bytes == len(b"PLAN-BYTES")
    assert rec["network_flags"] == 1 and rec["workspace"] == ("workspace", 64 << 20)
    assert rec["profile"] == {"image": ((1, 3, 32, 32), (1, 3, 256, 320), (1, 3, 320, 320))}
    assert rec["cache_in"] == b"old" and cache.read_bytes() == b"CACHE:old"
    assert "loaded" not in rec and rec["parsed"].graph == onnx.load(str(onnx_path)).graph
    meta = read_engine_sidecar(r.path)
    assert meta["tensorrt_version"] == "10.99.1" and meta["gpu_name"] == "Fake GPU"
    assert meta["compute_capability"] == "9.0" and meta["plugin_library_sha256"] is None
    assert meta["onnx_sha256"] == file_digest(onnx_path) and meta["onnx_file"] == "s.onnx"
    assert meta["profiles"] == [{"input": "image", "min": [1, 3, 32, 32], "opt": [1, 3, 256, 320],
                                 "max": [1, 3, 320, 320]}]
    assert meta["preset"] == "lite_R18" and meta["precision"] == "fp32"


def test_plugins_graph(env, plugin_build, tmp_path):
    from export.metadata import file_digest
    from export.trt_checks import read_engine_sidecar
    from export.trt_engine import BuildOptions, build_engine

    rec = env()
    r = build_engine(tiny_onnx(tmp_path / "p.onnx", flavour="plugins"), tmp_path / "p.engine",
                     BuildOptions(plugins=str(plugin_build["lib"])))
    (path, static), = rec["loaded"]
    assert path == str(plugin_build["lib"].resolve()) and static == "0"  # loaded once, static registration off
    parsed = {n.op_type: n for n in rec["parsed"].graph.node if n.domain == "lapmask"}
    assert {a.name for a in parsed["MatrixNMS"].attribute} >= {"plugin_namespace", "plugin_version"}
    assert parsed["DynamicDeformConv"].input[3].startswith("lapmask_trt_zero_bias")
    meta = read_engine_sidecar(r.path)
    assert meta["plugin_library_sha256"] == file_digest(plugin_build["lib"])
    assert meta["plugin_library"] == "liblapmask_trt_plugins.so"


def test_registry_without_the_creator(env, plugin_build, tmp_path):
    from export.trt_checks import PluginLibraryError
    from export.trt_engine import BuildOptions, build_engine

    env(creators={("MatrixNMS", "1", "lapmask")})
    with pytest.raises(PluginLibraryError, match="no creator for DynamicDeformConv v1"):
        build_engine(tiny_onnx(tmp_path / "p.onnx", flavour="plugins"), tmp_path / "p.engine",
                     BuildOptions(plugins=str(plugin_build["lib"])))
    assert not (tmp_path / "p.engine").exists()


def test_parser_and_builder_failures(env, tmp_path):
    from export.trt_engine import BuildOptions, build_engine

    env(parse_ok=False)
    with pytest.raises(RuntimeError, match="(?s)ONNX parser rejected.*Plugin not found"):
        build_engine(tiny_onnx(tmp_path / "s.onnx"), tmp_path / "s.engine", BuildOptions())
    env(plan=None)
    with pytest.raises(RuntimeError, match="could not build an engine"):
        build_engine(tiny_onnx(tmp_path / "s.onnx"), tmp_path / "s.engine", BuildOptions())
    assert not (tmp_path / "s.engine").exists() and not (tmp_path / "s.engine.json").exists()


def test_cli_success_message(env, tmp_path, capsys):
    from lapmask.cli import main

    env()
    out = tmp_path / "s.engine"
    assert main(["build-engine", str(tiny_onnx(tmp_path / "s.onnx")), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and "TensorRT 10.99.1" in text and "next: lapmask predict" in text
    assert json.loads((tmp_path / "s.engine.json").read_text())["workspace_mb"] == 4096
