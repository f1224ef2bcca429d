"""Inference: static path == official dynamic path when candidates <= K_pre; edge cases; numpy paste twin."""
import numpy as np
import pytest
import torch

from lapmask.inference import DeployLapMask, Predictor, dynamic_single
from lapmask.inference.paste import boxes_from_masks, paste_masks
from lapmask.model.preprocess import normalize_and_pad
from lapmask.postprocess import boxes_from_masks_np, paste_masks_np, postprocess_static, resize_bilinear
from lapmask.preprocess import ImageError, pad_to
from tests.helpers import engineered_model

torch.set_num_threads(2)


def _image(h, w, seed=0):
    rng = np.random.RandomState(seed)
    img = (rng.rand(h, w, 3) * 60 + 90).astype(np.uint8)
    for _ in range(6):  # a few bright blobs so features vary spatially
        y, x, r = rng.randint(0, h), rng.randint(0, w), rng.randint(5, 30)
        yy, xx = np.ogrid[:h, :w]
        img[(yy - y) ** 2 + (xx - x) ** 2 < r * r] = rng.randint(0, 255, 3)
    return img


def _run_both(model, img, k_pre):
    """Dynamic (official) and static outputs at stride 4 for one native-size image."""
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
    batch, _ = normalize_and_pad([t], model.pixel_mean, model.pixel_std)
    with torch.no_grad():
        dyn = dynamic_single(model(batch), 0, model.cfg)
        padded = torch.from_numpy(np.ascontiguousarray(pad_to(img).transpose(2, 0, 1)[None]))
        size = torch.tensor([img.shape[:2]], dtype=torch.int32)
        st = DeployLapMask(model, k_pre=k_pre)(padded, size)
    return dyn, st


@pytest.fixture(scope="module")
def model():
    return engineered_model(cate_bias=-2.3)


@pytest.mark.parametrize("bias,hw", [(-2.3, (96, 128)), (-2.9, (75, 117)), (-2.6, (130, 61))])
def test_static_equals_dynamic(bias, hw):
    model = engineered_model(cate_bias=bias)
    img = _image(*hw, seed=hw[0])
    dyn, (num, scores, labels, masks, ncand) = _run_both(model, img, k_pre=4000)
    n = int(num[0])
    assert 0 < int(ncand[0]) <= 4000, "the test needs candidates, and no more than K_pre"
    assert n == dyn["scores"].numel() > 5
    order = torch.argsort(dyn["scores"], descending=True)
    d_scores, d_labels, d_probs = dyn["scores"][order], dyn["labels"][order], dyn["probs"][order]
    gaps = (d_scores[:-1] - d_scores[1:]).abs()
    assert gaps.min() > 1e-7, "engineered weights must give distinct scores"
    assert torch.equal(labels[0, :n].long(), d_labels)
    assert torch.allclose(scores[0, :n], d_scores, atol=1e-7, rtol=0)
    assert torch.allclose(masks[0, :n], d_probs, atol=1e-6)
    assert (labels[0, n:] == -1).all() and (scores[0, n:] == 0).all() and masks[0, n:].abs().sum() == 0


def test_static_reports_candidates_above_k_pre(model):
    img = _image(96, 128)
    dyn, (num, scores, _, _, ncand) = _run_both(model, img, k_pre=8)
    assert int(ncand[0]) > 8  # the caller can tell the static result may differ from the reference
    assert int(num[0]) <= 8


def test_zero_candidates():
    m = engineered_model(cate_bias=-30.0)
    dyn, (num, scores, labels, masks, ncand) = _run_both(m, _image(64, 64), k_pre=100)
    assert dyn["scores"].numel() == 0 and int(num[0]) == 0 and int(ncand[0]) == 0
    assert (labels == -1).all() and scores.abs().max() == 0
    r = Predictor(m, resize=False)(_image(64, 64))
    assert r["masks"].shape == (0, 64, 64) and r["boxes"].shape == (0, 4)


def test_more_than_max_dets():
    m = engineered_model(cate_bias=1.0)
    dyn, (num, scores, labels, masks, ncand) = _run_both(m, _image(128, 128), k_pre=4000)
    assert int(num[0]) == 100 == dyn["scores"].numel()
    assert torch.allclose(torch.sort(dyn["scores"], descending=True).values, scores[0], atol=1e-6)


def test_output_not_resorted_when_at_most_max_dets():
    # Official quirk (spec 6 step 9): <= 100 survivors keep the pre-NMS order with decayed scores.
    dyn, _ = _run_both(engineered_model(cate_bias=-2.9), _image(96, 128, seed=96), k_pre=4000)
    s = dyn["scores"]
    assert 1 < s.numel() <= 100 and not torch.equal(s, torch.sort(s, descending=True).values)


@pytest.mark.parametrize("hw,ori", [((200, 300), (200, 300)), ((256, 384), (171, 250)), ((40, 60), (40, 60))])
def test_numpy_paste_matches_torch(hw, ori):
    g = torch.Generator().manual_seed(0)
    H4, W4 = -(-hw[0] // 32) * 8, -(-hw[1] // 32) * 8
    probs = torch.rand(4, H4, W4, generator=g)
    t = paste_masks(probs, hw, ori, 0.55).numpy()
    n = paste_masks_np(probs.numpy(), hw, ori, 0.55)
    assert t.shape == n.shape == (4, *ori)
    assert (t != n).mean() < 1e-4  # float rounding may flip pixels sitting exactly at the threshold
    assert np.array_equal(boxes_from_masks(torch.from_numpy(n)).numpy(), boxes_from_masks_np(n))


def test_resize_bilinear_matches_torch():
    x = torch.rand(2, 13, 17)
    for out in [(52, 68), (7, 9), (13, 40)]:
        ref = torch.nn.functional.interpolate(x[None], size=out, mode="bilinear", align_corners=False)[0]
        assert np.allclose(resize_bilinear(x.numpy(), out), ref.numpy(), atol=1e-6)


def test_postprocess_static_and_predictor_static(model):
    img = _image(75, 117, seed=75)
    pred = Predictor(model, resize=False, static=True, k_pre=4000)
    r = pred(img)
    ref = Predictor(model, resize=False)(img)
    assert sorted(r["scores"].round(5)) == sorted(ref["scores"].round(5))
    assert r["masks"].shape[1:] == (75, 117) and r["masks"].dtype == bool
    out = postprocess_static(0, np.zeros(3), np.zeros(3), np.zeros((3, 24, 32)), (75, 117), (75, 117), 0.55)
    assert out["masks"].shape == (0, 75, 117)


def test_resize_mode_uses_test_size(model):
    r = Predictor(model)(_image(100, 150))  # lite_R18 test size: shortest edge 256
    assert r["masks"].shape[1:] == (100, 150)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((32, 32), np.uint8), "grayscale"),
    (np.zeros((32, 32, 4), np.uint8), "4-channel"),
    (np.zeros((0, 32, 3), np.uint8), "empty"),
    (np.zeros((32, 32, 3), np.float32), "uint8"),
])
def test_bad_images(model, bad, match):
    with pytest.raises(ImageError, match=match):
        Predictor(model)(bad)
