"""Every python example in README.md and docs/ runs as written (in a fresh folder: examples may
write files); one whose optional framework is not installed skips."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OPTIONAL = {"torch", "onnx", "onnxruntime", "keras", "jax", "flax", "dask", "distributed"}
EXAMPLES = [(doc, i, code) for doc in DOCS
            for i, code in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), re.S))]


@pytest.mark.parametrize("doc,i,code", EXAMPLES,
                         ids=[f"{d.relative_to(ROOT)}#{i}" for d, i, _ in EXAMPLES])
def test_python_example_runs_as_written(doc, i, code, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(code, f"{doc.name}#{i}", "exec"), {"__name__": f"doc_example_{i}"})
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in OPTIONAL:
            pytest.skip(f"needs {exc.name}")
        raise


def test_every_document_with_examples_is_collected():
    assert {d.name for d, _, _ in EXAMPLES} >= {"README.md", "cells.md", "conformance.md"}
