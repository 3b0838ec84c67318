"""One JSON encoder, one policy for non-finite numbers: NaN and +-inf are written as null, and
every file is strict JSON."""
import json
import math

import numpy as np

from lstmcheck import jsonio
from lstmcheck.report import writer
from lstmcheck.sweep import results


def _strict(text):
    return json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def test_non_finite_numbers_are_null_and_the_text_is_strict_json():
    data = {"nan": float("nan"), "inf": math.inf, "ninf": np.float32(-np.inf),
            "arr": np.array([1.0, np.nan]), "c": complex(1, math.inf), 3: (np.int64(2),)}
    text = jsonio.dumps(data)
    assert _strict(text) == {"nan": None, "inf": None, "ninf": None, "arr": [1.0, None],
                             "c": {"real": 1.0, "imag": None}, "3": [2]}
    assert writer.to_jsonable is jsonio.to_jsonable


def test_results_file_lines_and_keys_use_the_same_encoder(tmp_path):
    point = {"cell": "lstm", "seed": 0, "forget_bias": None}
    key = results.point_key(point, "gates")
    assert key == json.dumps({"measure": "gates", **point}, sort_keys=True)   # keys unchanged
    with results.ResultsFile(tmp_path) as f:
        f.append(key, {**point, "time_constant": math.inf, "saturation": np.float64(0.5)})
    line = (tmp_path / results.RESULTS_FILE).read_text()
    assert _strict(line)["record"]["time_constant"] is None
    assert results.ResultsFile(tmp_path).load()[key]["saturation"] == 0.5


def test_audit_rows_follow_the_policy():
    from lstmcheck.audit import AuditReport
    rows = [{"check": "forward", "tensor": "y", "passed": False, "max_abs": math.inf,
             "max_rel": float("nan"), "ratio": math.inf, "where": {}}]
    rep = AuditReport(target="t", layout="torch", model="LSTM(3, 4)", dtype="float64",
                      config={}, tolerances={}, rows=rows)
    d = _strict(jsonio.dumps(rep))
    assert d["rows"][0]["max_abs"] is None and d["rows"][0]["ratio"] is None
    assert rep.to_dict()["rows"][0]["max_rel"] is None
