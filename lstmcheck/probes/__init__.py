"""Gradient-flow probes: per-lag gradient norms, Jacobian singular values, Lyapunov exponents and
gate statistics of one recurrent layer, each returning a plain result object with ``to_dict()``
(host NumPy arrays plus metadata). Plotting lives in lstmcheck.report, never here.
"""
from .flow import GradientNorms, gradient_norms
from .lyapunov import LyapunovSpectrum, lyapunov_spectrum
from .spectrum import JacobianSpectrum, jacobian_spectrum

__all__ = ["gradient_norms", "GradientNorms", "jacobian_spectrum", "JacobianSpectrum",
           "lyapunov_spectrum", "LyapunovSpectrum"]
