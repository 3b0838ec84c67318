"""What produced a result: package versions, backends, the GPU and why it is (not) usable.
Shown by `lstmcheck info` and stored in every report's results.json."""
from __future__ import annotations

import platform
import sys
from importlib import metadata

REQUIRED = ("numpy", "scipy", "matplotlib", "click")
OPTIONAL = ("torch", "onnx", "onnxruntime", "safetensors", "dask", "distributed", "tensorflow",
            "cupy-cuda12x", "cupy-cuda13x", "cupy")


def _version(dist: str):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment(gpu: bool = True) -> dict:
    """Versions (None = not installed), usable backends and the GPU status.

    ``gpu=False`` skips probing CuPy (which can take seconds on a machine with CUDA).
    """
    from .. import __version__, backend

    info = {
        "lstmcheck": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(terse=True),
        "required": {d: _version(d) for d in REQUIRED},
        "optional": {d: _version(d) for d in OPTIONAL},
    }
    if gpu:
        info["backends"] = backend.available_backends()
        info["gpu"] = backend.gpu_status()
    return info


def environment_text(env: dict) -> str:
    """What `lstmcheck info` prints: versions, backends and the GPU status of ``environment()``."""
    lines = [f"lstmcheck {env['lstmcheck']}  (Python {env['python']}, {env['platform']})"]
    for group in ("required", "optional"):
        lines.append(f"{group} packages:")
        lines += [f"  {name:<14} {version or 'not installed'}"
                  for name, version in env[group].items()]
    lines.append("backends:  " + ", ".join(env["backends"]))
    gpu = env["gpu"]
    if gpu["available"]:
        lines.append(f"GPU:       {gpu['device']} (CuPy {gpu['cupy']}, {gpu['devices']} device(s))")
    else:
        lines.append(f"GPU:       none usable: {gpu['reason']}")
    return "\n".join(lines)
