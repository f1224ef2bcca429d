"""Fixtures for the export tests (helpers live in export_testlib.py, importable by the test files)."""
from __future__ import annotations

import pytest
import torch
from export_testlib import (
    K_PRE,
    MAX_DETS,
    MIN_SCORE_GAP,
    SIZES,
    Exports,
    deploy_inputs,
    engineered_model,
    min_gap,
    reference,
)


@pytest.fixture(scope="session")
def lite():
    """(engineered lite_R18, cfg)."""
    return engineered_model()


@pytest.fixture(scope="session")
def references(lite):
    """{(H, W): (inputs, eager outputs)} for SIZES, with the engineering's promises asserted."""
    model, _ = lite
    out = {}
    for i, hw in enumerate(SIZES):
        image, size = deploy_inputs(hw, seed=10 + i)
        ref, nms_scores = reference(model, image, size)
        num_dets, scores, _, _, num_cand = ref
        valid = scores[0, : num_dets[0]]
        assert MAX_DETS < int((nms_scores >= 0).sum()) and int(num_cand[0]) <= K_PRE, \
            f"engineering broke: {int((nms_scores >= 0).sum())} valid, {int(num_cand[0])} candidates"
        assert num_dets[0] == MAX_DETS
        assert min_gap(nms_scores) >= MIN_SCORE_GAP and min_gap(torch.from_numpy(valid)) >= MIN_SCORE_GAP
        out[hw] = ((image, size), ref)
    return out


@pytest.fixture(scope="session")
def exports(lite, tmp_path_factory):
    model, cfg = lite
    return Exports(model, cfg, tmp_path_factory.mktemp("exports"))


