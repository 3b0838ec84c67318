"""Shared test configuration: GPU tests skip cleanly where CuPy or a GPU is missing."""
import os

import pytest

# Keras 3 reads its backend once, at import; TensorFlow is not among the test extras, torch is.
os.environ.setdefault("KERAS_BACKEND", "torch")

from lstmcheck import backend


def pytest_collection_modifyitems(config, items):
    if "cupy" in backend.available_backends():
        return
    reason = backend.gpu_status()["reason"]
    skip = pytest.mark.skip(reason=f"no GPU backend: {reason}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
