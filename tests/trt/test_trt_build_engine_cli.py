"""``lapmask build-engine``: argument validation, profiles, error messages and their order -- all before or
instead of TensorRT (tensorrt is absent here and forced absent where it is installed)."""
from __future__ import annotations

import sys

import pytest
from trt_testlib import lite_metadata, tiny_onnx


def run_cli(argv, capsys):
    from lapmask.cli import main

    rc = main(["build-engine", *argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.fixture
def no_tensorrt(monkeypatch):
    """Make ``import tensorrt`` fail even where TensorRT is installed."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)


def test_tensorrt_missing_says_pip_install(tmp_path, capsys, no_tensorrt):
    model = tiny_onnx(tmp_path / "m.onnx")
    rc, _, err = run_cli([str(model), "--out", str(tmp_path / "m.engine")], capsys)
    assert rc == 2
    assert "pip install tensorrt" in err and "lapmask build-engine: error" in err
    assert not (tmp_path / "m.engine").exists() and not (tmp_path / "m.engine.json").exists()


@pytest.mark.parametrize("argv, needle", [
    (["--out", "{t}/m.txt"], "name the engine *.engine"),
    (["--out", "{t}/m.engine", "--workspace", "0"], "--workspace 0"),
    (["--out", "{t}/m.engine", "--device", "-1"], "--device -1"),
    (["--out", "{t}/m.engine", "--max-shape", "800"], "--max-shape '800': give HxW"),
    (["--out", "{t}/m.engine", "--opt-shape", "0x640"], "--opt-shape '0x640'"),
    (["--out", "{t}/m.engine", "--min-shape", "100x128"], "multiples of 32"),
    (["--out", "{t}/m.engine", "--min-shape", "512x512", "--max-shape", "256x256"], "min 512x512 <= opt"),
    (["--out", "{t}/m.engine", "--plugins", "{t}/nope.so"], "--plugins"),
])
def test_bad_arguments(tmp_path, capsys, no_tensorrt, argv, needle):
    model = tiny_onnx(tmp_path / "m.onnx")
    rc, _, err = run_cli([str(model), *[a.format(t=tmp_path) for a in argv]], capsys)
    assert rc == 2 and needle in err, err
    assert "pip install tensorrt" not in err  # argument errors come first


def test_missing_or_wrong_model(tmp_path, capsys):
    rc, _, err = run_cli([str(tmp_path / "absent.onnx"), "--out", str(tmp_path / "e.engine")], capsys)
    assert rc == 2 and "model not found" in err
    (tmp_path / "m.pt").write_bytes(b"x")
    rc, _, err = run_cli([str(tmp_path / "m.pt"), "--out", str(tmp_path / "e.engine")], capsys)
    assert rc == 2 and "takes an exported .onnx" in err


def test_onnx_without_metadata(tmp_path, capsys, no_tensorrt):
    path = tiny_onnx(tmp_path / "m.onnx", meta={"producer": "someone else"})
    rc, _, err = run_cli([str(path), "--out", str(tmp_path / "m.engine")], capsys)
    assert rc == 2 and "no lapmask metadata" in err


def test_fixed_size_export_refuses_other_profiles(tmp_path, capsys, no_tensorrt):
    path = tiny_onnx(tmp_path / "m.onnx", meta=lite_metadata(input_hw=(320, 416)))
    rc, _, err = run_cli([str(path), "--out", str(tmp_path / "m.engine"), "--max-shape", "640x640"], capsys)
    assert rc == 2 and "fixed 320x416" in err
    # the same size is fine (and then TensorRT is what is missing)
    rc, _, err = run_cli([str(path), "--out", str(tmp_path / "m.engine"), "--max-shape", "320x416"], capsys)
    assert rc == 2 and "pip install tensorrt" in err


def test_plugins_graph_needs_a_library_before_tensorrt(tmp_path, capsys, no_tensorrt, monkeypatch):
    import export.trt_checks as tc

    monkeypatch.setattr(tc, "REPO_ROOT", tmp_path)  # no default build/lib here
    monkeypatch.delenv(tc.PLUGIN_LIBRARY_ENV, raising=False)
    path = tiny_onnx(tmp_path / "p.onnx", flavour="plugins")
    rc, _, err = run_cli([str(path), "--out", str(tmp_path / "p.engine")], capsys)
    assert rc == 2 and "--plugins" in err and "DynamicDeformConv" in err and "MatrixNMS" in err
    assert "pip install tensorrt" not in err


def test_not_a_plugin_library(tmp_path, capsys, no_tensorrt):
    path = tiny_onnx(tmp_path / "p.onnx", flavour="plugins")
    fake = tmp_path / "libfake.so"
    fake.write_bytes(b"\x7fELF not really")
    rc, _, err = run_cli([str(path), "--out", str(tmp_path / "p.engine"), "--plugins", str(fake)], capsys)
    assert rc == 2 and "not a lapmask plugin library" in err


# ---- profiles ----

def test_profile_defaults_from_metadata():
    from export.trt_engine import resolve_profile

    meta = lite_metadata()  # lite_R18: test size 256, max 512
    p = resolve_profile(meta)
    assert p.max == (512, 512) and p.opt == (256, 352) and p.min == (32, 32) and p.batch == 1
    assert p.shapes() == ((1, 3, 32, 32), (1, 3, 256, 352), (1, 3, 512, 512))
    assert p.covers(512, 32) and not p.covers(544, 32)
    # flags override; opt is capped by a smaller max
    q = resolve_profile(meta, max_hw=(320, 320))
    assert q.max == (320, 320) and q.opt == (256, 320)


def test_profile_fixed_and_batch():
    from export.trt_engine import resolve_profile

    p = resolve_profile(lite_metadata(input_hw=(320, 416), batch=2))
    assert p.min == p.opt == p.max == (320, 416) and p.shapes()[0] == (2, 3, 320, 416)


def test_parse_hw():
    from export.trt_engine import parse_hw

    assert parse_hw("800x1344", "--max-shape") == (800, 1344)
    assert parse_hw("64X96", "--max-shape") == (64, 96)
    assert parse_hw(None, "--max-shape") is None
    for bad in ("800", "x", "8x-2", "axb", "1x2x3"):
        with pytest.raises(ValueError, match="--max-shape"):
            parse_hw(bad, "--max-shape")


def test_no_gpu_message(monkeypatch):
    from export.trt_engine import NoGpuError, gpu_info

    try:
        info = gpu_info(0)
    except NoGpuError as e:
        assert "no CUDA GPU" in str(e) or "cuda-python" in str(e)
    else:  # a machine with a GPU: the info is well formed
        assert info.name and info.compute_capability.count(".") == 1
