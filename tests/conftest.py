"""Shared test configuration: GPU tests skip cleanly where CuPy or a GPU is missing."""
import atexit
import os
import shutil
import tempfile

import pytest

# Keras 3 reads its backend once, at import; TensorFlow is not among the test extras, torch is.
os.environ.setdefault("KERAS_BACKEND", "torch")

# Kernel choices measured while the suite loads the machine go to a folder of the run's own
# (subprocesses inherit it), never into the user's cache, where later real runs would use them.
_KERNEL_CACHE = tempfile.mkdtemp(prefix="lstmcheck-test-kernels-")
os.environ["LSTMCHECK_CACHE_DIR"] = _KERNEL_CACHE
atexit.register(shutil.rmtree, _KERNEL_CACHE, ignore_errors=True)

from hypothesis import settings

from lstmcheck import backend

# On CI the property tests draw the same examples every run, so that a landing is not refused
# by a draw that a local run did not make; locally they draw afresh, to keep finding new cases
# (each one found becomes an @example).
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_collection_modifyitems(config, items):
    if "cupy" in backend.available_backends():
        return
    reason = backend.gpu_status()["reason"]
    skip = pytest.mark.skip(reason=f"no GPU backend: {reason}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
