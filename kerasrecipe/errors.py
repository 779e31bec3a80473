"""kerasrecipe's errors: each says what was wrong, what was expected and how to fix it; and the type
tests the argument checks make before raising them."""
import math
import numbers


class KerasRecipeError(Exception):
    """Base class of every error kerasrecipe raises on purpose."""


class ConfigError(KerasRecipeError, ValueError):
    """A hyperparameter or argument has a value the recipe cannot use."""


class InputTypeError(KerasRecipeError, TypeError):
    """An argument has the wrong type (e.g. integer tensors given to a float kernel)."""


class NotCompiledError(KerasRecipeError, ValueError):
    """The model must be compiled (optimizer and loss) before this call."""


class PreflightError(KerasRecipeError, AssertionError):
    """Raised by preflight(strict=True) when a check failed; lists the failures."""

    def __init__(self, message, failures=None):
        super().__init__(message)
        self.failures = list(failures or [])


class DivergenceError(KerasRecipeError, RuntimeError):
    """Training produced non-finite numbers and could not go on."""


def is_real(v) -> bool:
    """A finite real number (NumPy scalars included, bool excluded)."""
    return not isinstance(v, bool) and isinstance(v, numbers.Real) and math.isfinite(v)


def is_integer(v) -> bool:
    """An integer (NumPy integers included, bool excluded)."""
    return not isinstance(v, bool) and isinstance(v, numbers.Integral)
