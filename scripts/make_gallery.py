#!/usr/bin/env python
"""Regenerate the committed gallery in reports/:

    python scripts/make_gallery.py            # writes reports/default/ and reports/trained/

reports/default is the default `lstmcheck report` study. reports/trained probes an `nn.LSTM`
trained on the adding task (T = 50) with PyTorch, in float32, at three checkpoints of one run
(steps 0, 150 and 600), all probed in float64: what `lstmcheck probe --weights step0.pt
--weights step150.pt --weights step600.pt --dtype float64` shows (skipped without torch).

Deterministic: every draw is seeded and the figures carry no dates, so rerunning on the same
versions of lstmcheck, NumPy, PyTorch and matplotlib rewrites identical files. To keep the
repository small the gallery has PNG figures (and the CSV beside each) only; the CLI also
writes SVG and PDF.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lstmcheck import __version__, studies  # noqa: E402
from lstmcheck.report import write_report  # noqa: E402

GALLERY = ROOT / "reports"
CHECKPOINTS = (0, 150, 600)


def _meta(command):
    return {"command": command, "lstmcheck": __version__, "seed": 0, "dtype": "float64",
            "backend": "numpy", "made by": "scripts/make_gallery.py"}


def default_gallery() -> bool:
    report = studies.default_study()
    command = ("lstmcheck report --out reports/default --force --backend numpy --dtype float64 "
               "--seed 0 --seq-len 100 --hidden-size 32 --batch 8")
    path = write_report(report, GALLERY / "default", force=True, meta=_meta(command),
                        formats=("png",))
    print(f"{path}: {report.headline}")
    return report.passed


def train_checkpoints(folder: Path) -> list:
    """nn.LSTM(2, 16) + a linear read-out trained with Adam on the adding task; the LSTM's
    state_dict saved at CHECKPOINTS (float32, PyTorch's layout)."""
    import torch

    from lstmcheck import tasks

    torch.manual_seed(0)
    lstm, head = torch.nn.LSTM(2, 16), torch.nn.Linear(16, 1)
    opt = torch.optim.Adam([*lstm.parameters(), *head.parameters()], lr=3e-3)
    paths = []
    for step in range(max(CHECKPOINTS) + 1):
        if step in CHECKPOINTS:
            paths.append(folder / f"step{step}.pt")
            torch.save(lstm.state_dict(), paths[-1])
        w = tasks.adding(50, 32, seed=step)
        x = torch.tensor(w.x, dtype=torch.float32)
        y = torch.tensor(w.targets, dtype=torch.float32)
        out, _ = lstm(x)
        loss = torch.mean((head(out[-1]) - y) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"adding task, T = 50: final training loss {float(loss.detach()):.4f} (predicting "
          f"the mean scores 1/6 = 0.167)")
    return paths


def trained_gallery() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        print("reports/trained skipped: PyTorch is not installed")
        return True
    with tempfile.TemporaryDirectory() as tmp:
        paths = train_checkpoints(Path(tmp))
        subjects = studies.probe_subjects(("lstm",), weights=[str(p) for p in paths],
                                          seq_len=100, batch=8, task="adding", seed=0,
                                          dtype="float64")
        for s, step in zip(subjects, CHECKPOINTS):
            s.label = f"LSTM trained {step} steps (float32 → float64)"
        report = studies.probe_study(subjects, seed=0)
    command = ("lstmcheck probe " + " ".join(f"--weights step{s}.pt" for s in CHECKPOINTS)
               + " --task adding --seq-len 100 --batch 8 --dtype float64 --seed 0 "
                 "--out reports/trained --force")
    path = write_report(report, GALLERY / "trained", force=True, meta=_meta(command),
                        formats=("png",))
    print(f"{path}: {report.headline}")
    return True


if __name__ == "__main__":
    ok = default_gallery()
    ok = trained_gallery() and ok
    sys.exit(0 if ok else 1)
