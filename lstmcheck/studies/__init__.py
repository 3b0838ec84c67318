"""Studies behind `lstmcheck report`, `lstmcheck probe` and `lstmcheck gradcheck`: run probes and
checks on models, collect summary rows, figures and the numbers behind them into a
:class:`~lstmcheck.report.Report`.

A study is a list of *sections*. Each section is a function ``section(report, ctx)`` that runs
one probe (or check) on the study's subjects, adds summary rows, a figure and its data. The
default study (``default_study``) is every section on a small RNN, LSTM and GRU; ``probe_study``
runs chosen sections on chosen models (or on a user's trained weights).

    subjects.py      what a study runs on (Subject, Context, subjects from a grid or a file)
    sections.py      the probe sections (flow, horizon, jacobian, lyapunov, gates)
    phase.py         the spectral-radius phase diagram section
    selfcheck.py     the oracle's self-check: cases, running them, their rows and figures
    audit_report.py  what an audit's report holds
    running.py       the section registry, run_sections, probe_study
    default.py       the default study of `lstmcheck report`
    estimates.py     memory and cost estimates that refuse impossible sizes up front
"""
from .audit_report import audit_report
from .default import DEFAULT_SECTIONS, DEFAULTS, HORIZON_SEQ_LENS, default_study
from .estimates import GRADCHECK_STEP_LIMIT, SizeError, refuse_huge, refuse_slow_gradcheck
from .phase import PHASE_RADII, PHASE_SEQ_LEN, phase_measure
from .running import PROBE_SECTIONS, SECTIONS, probe_study, run_sections
from .sections import HORIZON_SHARE, N_SPECTRUM
from .selfcheck import (Case, SelfCheckRow, SelfCheckSettings, add_self_check, run_self_check,
                        self_check_cases, self_check_report, self_check_tally)
from .subjects import (Context, Subject, label_of, probe_subjects, subject_from_weights,
                       subjects_from_grid)

__all__ = ["Subject", "Context", "label_of", "subjects_from_grid", "subject_from_weights",
           "probe_subjects", "default_study", "probe_study", "run_sections", "SECTIONS",
           "DEFAULT_SECTIONS", "PROBE_SECTIONS", "DEFAULTS", "HORIZON_SEQ_LENS", "HORIZON_SHARE",
           "N_SPECTRUM", "PHASE_RADII", "PHASE_SEQ_LEN", "phase_measure", "Case",
           "SelfCheckRow", "SelfCheckSettings", "self_check_cases", "run_self_check",
           "add_self_check", "self_check_report", "self_check_tally", "audit_report",
           "refuse_huge", "refuse_slow_gradcheck", "SizeError", "GRADCHECK_STEP_LIMIT"]
