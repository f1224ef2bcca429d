"""tests/ops fixtures: ``clib`` (the binding module with the session's library loaded). The library itself comes
from the session fixture ``kernels_lib`` in tests/conftest.py (shared with the plugins-flavour export tests)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def clib(kernels_lib: Path):
    """The binding module with the session's library loaded."""
    from lapmask.ops import clib as module

    module.load()
    return module
