"""Argument checks shared by the ProbConserv modules.

Every check raises ``ValueError`` or ``TypeError`` with a message that names the offending argument and
states what was expected, so that a scientist sees at once which input is wrong.
"""

import operator

import torch

__all__ = ["as_tensor", "check_finite", "check_nonnegative", "check_variance", "check_broadcasts_to", "check_index",
           "compiling", "eps_of"]


def as_tensor(x, name, dtype=None, device=None):
    """Convert ``x`` to a floating tensor, rejecting non-numeric input with a ``TypeError`` naming ``name``."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
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
