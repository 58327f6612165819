"""Quadrature weights on 1-D grids (uniform or not) and on 2-D/3-D tensor-product grids.

The weights ``w`` make ``w @ u`` the integral of ``u`` over the domain; they are the rows of a
conservation constraint ``G u = b``.
"""

from typing import Optional, Sequence, Union

import numpy as np
import torch

from _physics_constrained.validation import as_tensor, check_choice, check_finite, check_int, check_real, check_tensor

__all__ = ["quadrature_weights", "flatten_field", "unflatten_field"]

_RULES = ("trapezoid", "rectangle")

Axis = Union[torch.Tensor, np.ndarray, Sequence[float]]
Period = Optional[float]


def _axis_weights(x: Axis, rule: str, period: Period, name: str) -> torch.Tensor:
    x = as_tensor(x, name)
    if x.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of node positions, got shape {tuple(x.shape)}")
    if x.numel() < 2:
        raise ValueError(f"{name} must hold at least 2 nodes, got {x.numel()}")
    check_finite(x, name)
    dx = torch.diff(x)
    if not bool((dx > 0).all()):
        i = int(torch.nonzero(dx <= 0)[0])
        raise ValueError(
            f"{name} must be strictly increasing (a monotone grid), but {name}[{i + 1}] = {float(x[i + 1])!r} "
            f"<= {name}[{i}] = {float(x[i])!r}"
        )
    if period is not None:
        period = check_real(period, "period")
        wrap = x[0] + period - x[-1]
        if not period > 0 or not float(wrap) > 0:
            raise ValueError(
                f"period must exceed the grid extent {float(x[-1] - x[0])!r} (the end point is not repeated on a "
                f"periodic grid), got {period!r}"
            )
        # Periodic grid without the repeated end point: every node has a right neighbour.
        right = torch.cat([dx, wrap.reshape(1)])
        if rule == "rectangle":
            return right
        left = torch.cat([wrap.reshape(1), dx])
        return 0.5 * (left + right)
    if rule == "rectangle":
        # Left-point Riemann sum over [x0, xN]: node i owns [x_i, x_{i+1}); the last node owns nothing.
        return torch.cat([dx, dx.new_zeros(1)])
    w = x.new_zeros(x.shape)
    w[:-1] += 0.5 * dx
    w[1:] += 0.5 * dx
    return w


def quadrature_weights(grid: Union[Axis, Sequence[Axis]], rule: str = "trapezoid",
                       period: Union[Period, Sequence[Period]] = None) -> torch.Tensor:
    """Quadrature weights of a 1-D grid, or of a tensor-product grid given as a tuple of axes.

    Parameters
    ----------
    grid : 1-D tensor or array, or tuple/list of them
        Node positions, strictly increasing and not necessarily uniform. A tuple ``(x, y)`` or ``(x, y, z)``
        describes a tensor-product grid; the weights are then the outer product of the axis weights,
        flattened in row-major order (last axis fastest), which matches ``field.reshape(*lead, -1)``
        for a field of shape ``(*lead, len(x), len(y)[, len(z)])`` (see :func:`flatten_field`).
    rule : {"trapezoid", "rectangle"}
        ``"trapezoid"``: ``w0 = (x1-x0)/2``, ``wi = (x(i+1)-x(i-1))/2``, ``wN = (xN-x(N-1))/2``.
        ``"rectangle"``: left-point Riemann sum, ``wi = x(i+1)-xi`` and ``wN = 0``. Both integrate constants
        exactly over ``[x0, xN]``.
    period : float or tuple of (float or None), optional
        For a periodic axis whose end point is not repeated (e.g. ``linspace(0, L, N+1)[:-1]``), the period
        ``L``; the last node then connects to the first and the weights integrate over a whole period.

    Returns
    -------
    torch.Tensor
        Weights of shape ``(n,)``, ``n`` the total number of nodes, in the grid's floating dtype.

    Raises
    ------
    TypeError
        If an axis is not numeric or ``period`` not a real number.
    ValueError
        If an axis is not 1-D, has fewer than 2 nodes, is not finite or not strictly increasing; for an unknown
        ``rule``; or if a period does not exceed its axis' extent or the periods do not match the axes.
    """
    check_choice(rule, "rule", _RULES)
    if isinstance(grid, (tuple, list)):
        axes = list(grid)
        if not 1 <= len(axes) <= 3:
            raise ValueError(f"grid must be one axis or a tuple of 1 to 3 axes, got {len(axes)} axes")
        periods = period if isinstance(period, (tuple, list)) else (period,) * len(axes)
        if len(periods) != len(axes):
            raise ValueError(f"period must give one entry per axis ({len(axes)}), got {len(periods)}")
        w = None
        for k, (ax, p) in enumerate(zip(axes, periods)):
            wk = _axis_weights(ax, rule, p, f"grid[{k}]")
            w = wk if w is None else (w[:, None] * wk[None, :].to(w.dtype)).reshape(-1)
        return w
    if isinstance(period, (tuple, list)):
        raise ValueError(f"period must be a single number (or None) for a 1-D grid, got {period!r}")
    return _axis_weights(grid, rule, period, "grid")


def flatten_field(field: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """Flatten the last ``spatial_dims`` dimensions of a field to one node dimension of size ``n``.

    Parameters
    ----------
    field : torch.Tensor
        Shape ``(*lead, n1[, n2[, n3]])``.
    spatial_dims : int
        Number of trailing spatial dimensions (1, 2 or 3).

    Returns
    -------
    torch.Tensor
        Shape ``(*lead, n1*n2*...)``, row-major, consistent with :func:`quadrature_weights` on a tuple grid.

    Raises
    ------
    TypeError, ValueError
        If ``spatial_dims`` is not an integer between 1 and ``field.ndim``.
    """
    check_tensor(field, "field", layout="(*lead, n1[, n2[, n3]])")
    if check_int(spatial_dims, "spatial_dims", minimum=1) > field.ndim:
        raise ValueError(f"spatial_dims must be between 1 and field.ndim = {field.ndim}, got {spatial_dims}")
    return field.reshape(*field.shape[: field.ndim - spatial_dims], -1)


def unflatten_field(flat: torch.Tensor, spatial_shape: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`flatten_field`: reshape ``(*lead, n)`` to ``(*lead, *spatial_shape)``.

    Parameters
    ----------
    flat : torch.Tensor, shape ``(*lead, n)``
    spatial_shape : sequence of int
        Sizes ``(n1[, n2[, n3]])`` with product ``n``.

    Returns
    -------
    torch.Tensor, shape ``(*lead, *spatial_shape)``

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive integer or the sizes do not hold ``n`` nodes.
    """
    check_tensor(flat, "flat", layout="(*lead, n)")
    if flat.ndim < 1:
        raise ValueError(f"flat must be a tensor of shape (*lead, n), got shape {tuple(flat.shape)}")
    spatial_shape = tuple(check_int(s, f"spatial_shape[{i}]", minimum=1) for i, s in enumerate(spatial_shape))
    n = 1
    for s in spatial_shape:
        n *= s
    if flat.shape[-1] != n:
        raise ValueError(f"spatial_shape must hold the {flat.shape[-1]} nodes of flat's last dimension, "
                         f"got {spatial_shape} ({n} nodes)")
    return flat.reshape(*flat.shape[:-1], *spatial_shape)
