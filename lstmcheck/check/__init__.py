"""Gradient checking: ``check_gradients`` for any fn, ``gradcheck`` for the project's models."""
from .api import METHODS, check_gradients, gradcheck
from .hvp import check_hvp
from .report import GradcheckReport

__all__ = ["check_gradients", "check_hvp", "gradcheck", "GradcheckReport", "METHODS"]
