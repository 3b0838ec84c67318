"""Audit rows are typed (AuditRow) and still read and serialise like the dicts they replaced."""
import json

import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck.audit import AuditRow
from lstmcheck.jsonio import dumps


def test_rows_of_a_real_audit_are_typed_and_serialise_as_before():
    torch = pytest.importorskip("torch")
    rep = lc.audit(torch.nn.GRU(3, 4).double(), fd_elements=4)
    assert rep.passed and rep.rows and all(isinstance(r, AuditRow) for r in rep.rows)
    for row in json.loads(dumps(rep))["rows"]:
        keys = list(row)
        assert keys[:7] == ["check", "tensor", "passed", "max_abs", "max_rel", "ratio", "where"]
        assert keys[7:9] == ["rtol", "atol"] or row["check"] == "fd"


def test_a_row_reads_like_a_dict():
    r = AuditRow("forward", "y", True, 0.0, 0.0, 0.0, {}, rtol=1e-9, atol=1e-9)
    assert r["passed"] and r.get("note") is None and "note" not in r and "rtol" in r
    r["passed"] = False
    assert not r.passed
    with pytest.raises(KeyError):
        r["note"]
    with pytest.raises(KeyError):
        r["no_such_field"] = 1
    fd = AuditRow("fd", "weight_hh_l0", True, 0.0, 0.0, 0.0, {}, method="central", checked=12,
                  resolution=None, inconclusive=False)
    assert fd.to_dict() == {"check": "fd", "tensor": "weight_hh_l0", "passed": True,
                            "max_abs": 0.0, "max_rel": 0.0, "ratio": 0.0, "where": {},
                            "method": "central", "checked": 12, "resolution": None,
                            "inconclusive": False}
    assert np.isinf(AuditRow("forward", "y", False, np.inf, np.inf, np.inf, {}).max_abs)
