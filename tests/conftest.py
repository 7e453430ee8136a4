"""Shared test settings: small CPU thread pool, deterministic seeds, CUDA tests skipped without a GPU."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(2)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _numbered_outputs_in_tmp(tmp_path_factory, monkeypatch):
    """Runs without --out write numbered folders under $VIDSEG_OUT: keep them out of the checkout."""
    monkeypatch.setenv("VIDSEG_OUT", str(tmp_path_factory.getbasetemp() / "vidseg-out"))


@pytest.fixture(autouse=True)
def _auto_engine_measures_torch_only(request, monkeypatch):
    """`--engine auto` (the default) builds and times every engine that can run here, ONNX Runtime included:
    an export per new model, which the suite's hundreds of freshly initialised tiny models would pay again and
    again. Tests see only eager torch as a candidate, unless marked `auto_backend` (the tests of auto itself)."""
    if request.node.get_closest_marker("auto_backend") is None:
        from vidseg.engine.backends import auto

        monkeypatch.setattr(auto, "auto_candidates", lambda device: ("torch",))
