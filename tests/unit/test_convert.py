"""Official checkpoint conversion: strict, safe, clear errors (issue 2 item 6)."""
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from lapmask.cli import main as cli_main
from lapmask.config import get_preset
from lapmask.convert import convert_official_state_dict, read_official_checkpoint
from lapmask.engine.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from lapmask.model.lapmask import build_model

KEYS = Path(__file__).resolve().parents[3] / "shared" / "design" / "official-keys"


def synthetic_official(name, seed=0):
    """A state_dict laid out by the official key list, with deterministic values."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for line in (KEYS / f"keys_{name}.tsv").read_text().splitlines():
        k, s = line.split("\t")
        shape = tuple(int(x) for x in s.strip("()").split(",") if x.strip())
        sd[k] = torch.randn(shape, generator=g) * 0.01
    return sd


@pytest.mark.skipif(not KEYS.is_dir(), reason="official key lists not beside the checkout")
@pytest.mark.parametrize("name", ["R50_3x", "R101_DCN_3x", "R50_448_4x", "V_57_3x"])
def test_converter_accepts_official_key_list_and_loads_strictly(name):
    sd = synthetic_official(name)
    out = convert_official_state_dict({"module." + k: v for k, v in sd.items()}, get_preset(name))
    with torch.device("meta"):
        model = build_model(get_preset(name))
    model.load_state_dict(out, strict=True, assign=True)
    k = next(iter(sd))
    assert torch.equal(model.state_dict()[k], sd[k])


@pytest.mark.skipif(not KEYS.is_dir(), reason="official key lists not beside the checkout")
def test_checkpoint_of_another_config_is_named():
    sd = synthetic_official("R50_448_4x")
    with pytest.raises(CheckpointError, match="R50_448_4x|R50_512_4x"):
        convert_official_state_dict(sd, get_preset("R50_3x"))
    sd.pop("ins_head.cate_pred.bias")
    with pytest.raises(CheckpointError, match="missing.*ins_head.cate_pred.bias"):
        convert_official_state_dict(sd, get_preset("R50_448_4x"))


@pytest.mark.skipif(not KEYS.is_dir(), reason="official key lists not beside the checkout")
def test_cli_convert_detectron2_wrapped_and_pkl(tmp_path):
    sd = synthetic_official("R50_3x")
    torch.save({"model": sd, "iteration": 5, "__author__": "x"}, tmp_path / "d2.pth")
    assert cli_main(["convert-official", str(tmp_path / "d2.pth"), str(tmp_path / "out.pth"),
                     "--config", "R50_3x"]) == 0
    ck = load_checkpoint(tmp_path / "out.pth")
    assert ck["config"]["name"] == "R50_3x" and torch.equal(ck["model"]["ins_head.cate_pred.bias"],
                                                             sd["ins_head.cate_pred.bias"])
    with open(tmp_path / "d2.pkl", "wb") as f:  # detectron2 model-zoo style: numpy arrays in {"model": ...}
        pickle.dump({"model": {k: v.numpy() for k, v in sd.items()}}, f)
    assert set(read_official_checkpoint(tmp_path / "d2.pkl")) == set(sd)


class _Evil:
    def __reduce__(self):
        return (Path("/tmp/lapmask_pwned").touch, ())


def test_unsafe_and_corrupt_files(tmp_path):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"model": _Evil()}))
    with pytest.raises(CheckpointError, match="refusing"):
        read_official_checkpoint(evil)
    assert not Path("/tmp/lapmask_pwned").exists()
    junk = tmp_path / "junk.pth"
    junk.write_bytes(np.random.RandomState(0).bytes(2000))
    with pytest.raises(CheckpointError):
        read_official_checkpoint(junk)
    with pytest.raises(CheckpointError, match="not a readable lapmask checkpoint"):
        load_checkpoint(junk)
    assert cli_main(["convert-official", str(junk), str(tmp_path / "o.pth"), "--config", "R50_3x"]) == 2


def test_lapmask_checkpoint_round_trip_and_mismatch(tmp_path):
    cfg = get_preset("lite_R18")
    model = build_model(cfg)
    p = save_checkpoint(tmp_path / "m.pth", model.state_dict(), cfg)
    loaded, cfg2 = load_model(p)
    assert cfg2 == cfg and all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                                  loaded.state_dict().values()))
    with pytest.raises(CheckpointError, match="another config|does not fit"):
        load_model(p, "lite_R34")
    torch.save({"model": model.state_dict()}, tmp_path / "d2style.pth")
    with pytest.raises(CheckpointError, match="convert-official"):
        load_checkpoint(tmp_path / "d2style.pth")
    truncated = tmp_path / "trunc.pth"
    truncated.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(CheckpointError):
        load_checkpoint(truncated)
