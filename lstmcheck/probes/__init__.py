"""Gradient-flow probes: per-lag gradient norms, Jacobian singular values, Lyapunov exponents and
gate statistics of one recurrent layer, each returning a plain result object with ``to_dict()``
(host NumPy arrays plus metadata). Plotting lives in lstmcheck.report, never here.
"""
from .flow import GradientNorms, gradient_norms

__all__ = ["gradient_norms", "GradientNorms"]
