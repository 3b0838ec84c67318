"""Gradient-flow probes: per-lag gradient norms, Jacobian singular values, Lyapunov exponents and
gate statistics of one recurrent layer, each returning a plain result object with ``to_dict()``
(host NumPy arrays plus metadata), and the horizon study that compares cells over T.
Plotting lives in lstmcheck.report, never here.

Time convention: s_0 is the initial state, x[t-1] drives s_{t-1} -> s_t (t = 1..T); the lag of
step t is T - t. The state s is h for RNN and GRU and (h, c) for LSTM.
"""
from .flow import GradientNorms, gradient_norms
from .gates import GateStatistics, gate_statistics
from .horizon import HorizonStudy, horizon_study
from .lyapunov import LyapunovSpectrum, kaplan_yorke, lyapunov_spectrum
from .spectrum import JacobianSpectrum, jacobian_spectrum

__all__ = ["gradient_norms", "GradientNorms", "jacobian_spectrum", "JacobianSpectrum",
           "lyapunov_spectrum", "LyapunovSpectrum", "kaplan_yorke", "gate_statistics",
           "GateStatistics", "horizon_study", "HorizonStudy"]
