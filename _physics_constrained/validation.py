"""The argument checks of both packages (``boon_ext`` and ``probconserv_ext``): one vocabulary, one message style.

Every check takes the value first and the argument's name second, returns the checked (possibly converted) value,
and raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right kind, wrong value) with a message of the
form ``"<name> must be <what was expected>, got <what was given>"``, so that a scientist sees at once which input
is wrong and what to pass instead.

Scalar settings (:func:`check_int`, :func:`check_real`, :func:`check_range`, :func:`check_interval`,
:func:`check_choice`, :func:`check_generator`) serve constructors and data generators; the tensor checks
(:func:`as_tensor`, :func:`check_finite`, :func:`check_nonnegative`, :func:`check_variance`,
:func:`check_broadcasts_to`, :func:`check_index`) serve the layers.
"""

import math
import numbers
import operator
from typing import Any, Optional, Sequence, Tuple

import torch

__all__ = ["as_tensor", "check_finite", "check_nonnegative", "check_variance", "check_broadcasts_to", "check_index",
           "check_int", "check_real", "check_range", "check_interval", "check_choice", "check_generator",
           "compiling", "eps_of", "check_fraction", "check_tensor", "check_float_dtype", "check_bool",
           "check_compute_dtype", "COMPUTE_DTYPES", "is_bool"]


# ------------------------------------------------------------------ scalar settings
def check_int(value: Any, name: str, minimum: Optional[int] = None) -> int:
    """A Python or NumPy integer (not ``bool``), at least ``minimum`` if given; returned as ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_real(value: Any, name: str, positive: bool = False, nonnegative: bool = False) -> float:
    """A finite real number (not ``bool``), optionally positive or non-negative; returned as ``float``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and not value > 0:
        raise ValueError(f"{name} must be positive, got {value}")
    if nonnegative and value < 0:
        raise ValueError(f"{name} must be non-negative, got {value}")
    return value


def check_range(value: Any, name: str, positive: bool = False) -> Tuple[float, float]:
    """A fixed value ``v`` (returned as ``(v, v)``) or a sampling interval ``(low, high)`` with ``low <= high``."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        v = check_real(value, name, positive=positive)
        return (v, v)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a number or a (low, high) pair, got {value!r}")
    lo = check_real(value[0], f"{name}[0]", positive=positive)
    hi = check_real(value[1], f"{name}[1]", positive=positive)
    if lo > hi:
        raise ValueError(f"{name} must have low <= high, got ({lo}, {hi})")
    return (lo, hi)


def check_interval(value: Any, name: str) -> Tuple[float, float]:
    """A pair ``(a, b)`` of finite numbers with ``a < b`` (a domain)."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a pair (a, b), got {value!r}")
    a = check_real(value[0], f"{name}[0]")
    b = check_real(value[1], f"{name}[1]")
    if not b > a:
        raise ValueError(f"{name} must have a < b, got ({a}, {b})")
    return (a, b)


def check_choice(value: Any, name: str, choices: Sequence[Any]) -> Any:
    """One of ``choices``."""
    if value not in tuple(choices):
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_generator(value: Any, name: str = "generator") -> Optional[torch.Generator]:
    """A ``torch.Generator`` or ``None``."""
    if value is not None and not isinstance(value, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(value).__name__}")
    return value


# ------------------------------------------------------------------ tensors


def as_tensor(x, name, dtype=None, device=None):
    """Convert ``x`` to a floating tensor, rejecting non-numeric input with a ``TypeError`` naming ``name``."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
        # A boolean given where numbers are meant is refused before the cast to a floating dtype would make it 1.0
        # (Python and NumPy scalars and arrays, and sequences of them).
        if is_bool(x) or str(getattr(x, "dtype", "")) == "bool" or (
                isinstance(x, (list, tuple)) and _holds_bool(x)):
            raise TypeError(f"{name} must be real-valued, got booleans ({type(x).__name__})")
        try:
            # Python scalars go straight to the requested dtype (a float32 detour would lose digits).
            t = torch.as_tensor(x, dtype=dtype if dtype is not None and dtype.is_floating_point else None)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name} must be a tensor or array of numbers, got {type(x).__name__}") from err
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must be real-valued, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if dtype is not None or device is not None:
        t = t.to(dtype=dtype or t.dtype, device=device or t.device)
    return t


def _holds_bool(seq) -> bool:
    """Whether a (nested) list or tuple converts to a boolean tensor."""
    try:
        return torch.as_tensor(seq).dtype == torch.bool
    except (TypeError, ValueError, RuntimeError):
        return False


def compiling():
    """True while ``torch.compile`` traces: checks that need a host synchronisation (``bool(tensor)``) are skipped."""
    return torch.compiler.is_compiling()


def check_finite(t, name):
    """Raise ``ValueError`` if ``t`` holds NaN or inf."""
    t_ = t.detach()  # reading values of a tensor that requires grad must not warn
    # One reduction is enough on the fast path: NaN and inf propagate into the sum (a finite sum that
    # overflows only sends us to the exact element-wise check).
    if t_.numel() and bool(torch.isfinite(t_.sum())):
        return t
    if not bool(torch.isfinite(t_).all()):
        bad = "NaN" if bool(torch.isnan(t_).any()) else "inf"
        raise ValueError(f"{name} must be finite, but it contains {bad}")
    return t


def check_nonnegative(t, name):
    """Raise ``ValueError`` if ``t`` has a negative entry (variances, noise)."""
    check_finite(t, name)
    t_ = t.detach()
    if t_.numel() and not bool(t_.amin() >= 0):
        raise ValueError(f"{name} must be non-negative, but its smallest entry is {float(t_.min()):.3e}")
    return t


def check_variance(t, name, dtype=None):
    """Non-negative and finite, with no subnormal entry (in ``dtype``, the compute dtype, if given).

    A subnormal variance (``0 < v < finfo.tiny``) has lost most of its significant digits, and products with it
    underflow: the update would silently lose accuracy. Zero (an exactly known node) is allowed.
    """
    check_finite(t, name)
    t_ = t.detach()
    if not t_.numel():
        return t
    dtype = dtype or t_.dtype
    tiny = torch.finfo(dtype).tiny
    lo = float(t_.amin())  # one reduction settles the common case (all variances normal and positive)
    if lo < 0:
        raise ValueError(f"{name} must be non-negative, but its smallest entry is {lo:.3e}")
    if lo < tiny:
        tc = t_.to(dtype)
        small = (t_ != 0) & (tc < tiny)
        if bool(small.any()):
            v = float(t_.masked_fill(~small, float("inf")).amin())
            raise ValueError(
                f"{name} has subnormal entries (smallest positive {v:.3e} < {tiny:.3e}, the smallest normal "
                f"number of {dtype}); they carry few significant digits and underflow in the update: rescale the "
                "field's units (or set them to exactly 0 for known nodes)"
            )
    return t


def check_broadcasts_to(shape, target, name, expected, hint="", full_shape=None):
    """Raise ``ValueError`` unless a tensor of ``shape`` broadcasts to ``target`` without enlarging it.

    Broadcasting in the other direction would silently turn the result into a bigger array than the prediction.

    Parameters
    ----------
    shape, target : tuple of int
        The (leading) shape of the argument and the shape it must broadcast to.
    name : str
        The argument's name.
    expected : str
        What ``target`` is, for the message (e.g. "the mean's leading shape (4, 1)").
    hint : str
        Appended to the message.
    full_shape : tuple of int, optional
        The argument's whole shape, shown in the message when ``shape`` is only its leading part.

    Raises
    ------
    ValueError
    """
    shape, target = torch.Size(shape), torch.Size(target)
    try:
        out = torch.broadcast_shapes(shape, target)
    except RuntimeError:
        out = None
    if out != target:
        what = f"does not broadcast with {expected}" if out is None else f"would broadcast {expected} to {tuple(out)}"
        lead = "" if full_shape is None else f" (leading shape {tuple(shape)})"
        shown = tuple(shape) if full_shape is None else tuple(full_shape)
        raise ValueError(f"{name} of shape {shown}{lead} {what}; the result must keep the prediction's "
                         f"shape, so expected a {'leading ' if full_shape is not None else ''}shape that broadcasts "
                         f"to {tuple(target)}{hint}")


def check_index(i, name):
    """An integer index (Python int, NumPy integer, integer 0-d tensor); ``bool`` and floats raise ``TypeError``."""
    if isinstance(i, bool) or (isinstance(i, torch.Tensor) and (i.dtype == torch.bool or i.is_floating_point())):
        raise TypeError(f"{name} must be an integer (not bool or float), got {i!r} ({type(i).__name__})")
    if type(i).__name__ == "bool_":  # numpy.bool_
        raise TypeError(f"{name} must be an integer (not bool or float), got {i!r} (a boolean)")
    try:
        return operator.index(i)
    except TypeError as err:
        raise TypeError(f"{name} must be an integer (not bool or float), got {i!r} ({type(i).__name__})") from err


def eps_of(dtype):
    """Machine epsilon of a floating dtype."""
    return torch.finfo(dtype).eps


# ------------------------------------------------------------------ appended: fractions and tensor arguments
def check_fraction(value: Any, name: str, include_one: bool = True) -> float:
    """A real number in ``[0, 1]`` (``[0, 1)`` with ``include_one=False``): a weight or a share; returned as float.

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If it is not finite or lies outside the interval.
    """
    value = check_real(value, name)
    if not (0.0 <= value <= 1.0) or (value == 1.0 and not include_one):
        raise ValueError(f"{name} must be in [0, {'1]' if include_one else '1)'}, got {value}")
    return value


def check_tensor(value: Any, name: str, ndim: Optional[int] = None, layout: str = "",
                 floating: bool = False) -> torch.Tensor:
    """A ``torch.Tensor`` (floating if asked) with ``ndim`` dimensions if given; returned unchanged.

    Parameters
    ----------
    value : Any
    name : str
    ndim : int, optional
        The required number of dimensions.
    layout : str
        The expected shape in words, for the message (e.g. ``"(batch, channels, n)"``).
    floating : bool
        Require a floating dtype.

    Raises
    ------
    TypeError
        If ``value`` is not a tensor (or not floating when required).
    ValueError
        If it has the wrong number of dimensions.
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of shape {layout or '(...)'}, got {type(value).__name__}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {value.dtype}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must be a tensor of shape {layout or ndim * '(.)'}, got shape {tuple(value.shape)}")
    return value


def check_float_dtype(value: Any, name: str = "dtype") -> torch.dtype:
    """A floating ``torch.dtype`` (the dtype a distribution or a computation is asked for)."""
    if not (isinstance(value, torch.dtype) and value.is_floating_point):
        raise ValueError(f"{name} must be a floating torch.dtype, got {value!r}")
    return value


# ------------------------------------------------------------------ appended: switches and the compute dtype
#: The dtypes a computation may run in: half precision (float16, bfloat16) has 3-4 significant digits, too few for
#: the solves and round-off checks of either method (a conservation update in float16 conserves only to ~1e-3 and
#: its Cholesky factorisation fails for two rows).
COMPUTE_DTYPES = (torch.float32, torch.float64)


def is_bool(value: Any) -> bool:
    """Whether ``value`` is a Python or NumPy boolean scalar (NumPy 2 names its type ``bool``, NumPy 1 ``bool_``)."""
    t = type(value)
    return isinstance(value, bool) or (t.__module__ == "numpy" and t.__name__ in ("bool", "bool_"))


def check_bool(value: Any, name: str) -> bool:
    """A ``bool`` (or NumPy ``bool_``); returned as ``bool``.

    No truthiness: ``"false"``, ``0``, ``1``, ``None`` or a tensor are refused, since ``bool("false")`` is ``True``
    (a switch read from a JSON or YAML file as a string would otherwise turn on silently).

    Raises
    ------
    TypeError
        If ``value`` is not a boolean.
    """
    if is_bool(value):
        return bool(value)
    raise TypeError(f"{name} must be a bool (True or False), got {value!r} ({type(value).__name__})")


def check_compute_dtype(value: Any, name: str = "compute_dtype") -> torch.dtype:
    """``torch.float32`` or ``torch.float64``: the dtype a solve runs in (:data:`COMPUTE_DTYPES`).

    Raises
    ------
    ValueError
        For anything else (as :func:`check_float_dtype`): half precision (``torch.float16``, ``torch.bfloat16``),
        integer or complex dtypes, a string such as ``"float64"``.
    """
    expected = "torch.float32 or torch.float64"
    if not isinstance(value, torch.dtype):
        raise ValueError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")
    if value not in COMPUTE_DTYPES:
        why = (" (half precision has too few digits for the solve and its round-off checks)"
               if value.is_floating_point else "")
        raise ValueError(f"{name} must be {expected}, got {value}{why}")
    return value
