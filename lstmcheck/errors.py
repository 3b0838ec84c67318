"""Errors a user can cause. Each carries one clear sentence; the CLI prints it and exits 2."""


class LstmcheckError(Exception):
    """Base class of every error lstmcheck raises on purpose."""


class ShapeError(LstmcheckError, ValueError):
    """An array has the wrong rank or size."""


class DTypeError(LstmcheckError, TypeError):
    """An array has the wrong or a mismatched dtype."""


class NonFiniteError(LstmcheckError, ValueError):
    """NaN or Inf where finite numbers are required."""


class OptionError(LstmcheckError, ValueError):
    """An unknown or contradictory option."""


class ParameterError(LstmcheckError, KeyError):
    """Parameters with missing or unexpected names."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class BackendError(LstmcheckError, RuntimeError):
    """CuPy missing, no GPU visible, or the GPU ran out of memory."""


class FileFormatError(LstmcheckError, ValueError):
    """A file that cannot be read or does not hold what was expected."""


class ConversionError(LstmcheckError, ValueError):
    """A layout conversion that cannot be exact."""


class FunctionError(LstmcheckError, RuntimeError):
    """The user's fn raised, or returned something that is not a real scalar loss."""


class MissingDependencyError(LstmcheckError, ImportError):
    """An optional dependency is needed but not installed."""


def require(module: str, extra: str, purpose: str):
    """Import an optional dependency or raise one clear sentence saying how to get it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"{purpose} needs the optional package '{module}'; install it with "
            f"`pip install 'lstmcheck[{extra}]'`."
        ) from None
