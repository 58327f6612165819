"""Argument checks shared by the ProbConserv modules.

Every check raises ``ValueError`` or ``TypeError`` with a message that names the offending argument and
states what was expected, so that a scientist sees at once which input is wrong.
"""

import torch

__all__ = ["as_tensor", "check_finite", "check_nonnegative", "eps_of"]


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


def check_finite(t, name):
    """Raise ``ValueError`` if ``t`` holds NaN or inf."""
    # One reduction is enough on the fast path: NaN and inf propagate into the sum (a finite sum that
    # overflows only sends us to the exact element-wise check).
    if t.numel() and bool(torch.isfinite(t.sum())):
        return t
    if not bool(torch.isfinite(t).all()):
        bad = "NaN" if bool(torch.isnan(t).any()) else "inf"
        raise ValueError(f"{name} must be finite, but it contains {bad}")
    return t


def check_nonnegative(t, name):
    """Raise ``ValueError`` if ``t`` has a negative entry (variances, noise)."""
    check_finite(t, name)
    if t.numel() and not bool(t.amin() >= 0):
        raise ValueError(f"{name} must be non-negative, but its smallest entry is {float(t.min()):.3e}")
    return t


def eps_of(dtype):
    """Machine epsilon of a floating dtype."""
    return torch.finfo(dtype).eps
