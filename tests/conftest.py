"""Shared test configuration: GPU tests skip cleanly where CuPy or a GPU is missing."""
import pytest

from lstmcheck import backend


def pytest_collection_modifyitems(config, items):
    if "cupy" in backend.available_backends():
        return
    reason = backend.gpu_status()["reason"]
    skip = pytest.mark.skip(reason=f"no GPU backend: {reason}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
