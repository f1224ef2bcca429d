"""Bad export requests fail fast (before any tracing) with messages that say what to do."""
from __future__ import annotations

import subprocess
import sys

import pytest

from lapmask.cli import main


def _cli(capsys, *argv: str) -> tuple[int, str]:
    rc = main(["export", *argv])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("argv,needle", [
    (["--config", "R51_3x"], "neither a preset (R50_3x"),
    (["--config", "lite_R18", "--height", "250", "--width", "320"], "multiples of 32"),
    (["--config", "lite_R18", "--height", "256"], "both --height and --width"),
    (["--config", "lite_R18", "--height", "256", "--width", "320", "--dynamic"], "exclude each other"),
    (["--config", "lite_R18", "--dcn-form", "deformconv", "--opset", "17"], "DeformConv exists from opset 19"),
    (["--config", "lite_R18", "--opset", "15"], "GridSample exists from opset 16"),
    (["--config", "lite_R18", "--opset", "21"], "opset <= 20"),
    (["--config", "lite_R18", "--k-pre", "5000"], "TopK limit of 3840"),
    (["--config", "lite_R18", "--max-dets", "4000"], "TopK limit of 3840"),
    (["--config", "lite_R18", "--k-pre", "0"], "must be >= 1"),
    (["--config", "lite_R18", "--flavour", "plugins", "--dcn-form", "gridsample"], "standard flavour"),
    (["--weights", "/nonexistent/w.pth"], "checkpoint not found"),
])
def test_bad_export_arguments(capsys, tmp_path, argv, needle):
    rc, err = _cli(capsys, "--onnx", str(tmp_path / "m.onnx"), *argv)
    assert rc == 2 and needle in err, err
    assert not (tmp_path / "m.onnx").exists()


def test_weights_of_another_preset(capsys, tmp_path):
    """A lite_R34 checkpoint exported as lite_R18: the key/shape check names the mismatch and the fix."""
    from lapmask.config import get_preset
    from lapmask.engine.checkpoint import save_checkpoint
    from lapmask.model.lapmask import build_model

    cfg = get_preset("lite_R34")
    ckpt = save_checkpoint(tmp_path / "r34.pth", build_model(cfg).state_dict(), cfg)
    rc, err = _cli(capsys, "--onnx", str(tmp_path / "m.onnx"), "--config", "lite_R18", "--weights", str(ckpt))
    assert rc == 2 and "does not fit this model" in err and "--config" in err, err


def test_export_api_rejects_bad_sizes_directly():
    from export.checks import ExportArgumentError, check_export_args
    from lapmask.config import get_preset

    cfg = get_preset("R50_3x")
    kw = {"flavour": "standard", "dcn_form": "gridsample", "opset": 19, "k_pre": 500, "max_dets": 100}
    check_export_args(cfg, input_hw=(800, 1216), **kw)  # fine
    with pytest.raises(ExportArgumentError, match="--height 800 --width 1216"):
        check_export_args(cfg, input_hw=(800, 1199), **kw)
    with pytest.raises(ExportArgumentError, match="unknown flavour"):
        check_export_args(cfg, input_hw=None, **{**kw, "flavour": "tensorrt"})
    with pytest.raises(ExportArgumentError, match="Matrix NMS only"):
        check_export_args(cfg.replace(inference=cfg.inference.__class__(nms_type="mask")), input_hw=None, **kw)


def test_command_modules_import_nothing_heavy():
    code = ("import sys, export.commands.export as e, export.commands.compare as c, export.flavours as f\n"
            "import argparse; e.add_arguments(argparse.ArgumentParser()); c.add_arguments(argparse.ArgumentParser())\n")
    light = ("import sys, export.commands.export, export.commands.compare\n"
             "assert 'torch' not in sys.modules and 'onnx' not in sys.modules, 'heavy import at module level'\n")
    subprocess.run([sys.executable, "-c", light], check=True)
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_choices_match_the_flavour_table():
    from export import flavours
    from export.commands import export as cmd

    assert cmd.FLAVOURS == flavours.FLAVOURS and cmd.DCN_FORMS == flavours.DCN_FORMS
