"""The one-sided finite difference that defines a Neumann condition, written once.

A Neumann condition prescribes ``du/dx`` at a face of a grid that includes both end points, ``h = (b - a) /
(N - 1)``. The derivative is the one-sided difference of order 1 or 2 into the grid:

* order 2: ``(-3 u0 + 4 u1 - u2) / (2h)`` at the left face, ``(3 uN - 4 u(N-1) + u(N-2)) / (2h)`` at the right;
* order 1: ``(u1 - u0) / h`` and ``(uN - u(N-1)) / h``.

Enforcement, the error measure, the smooth lift, the normaliser of boundary values and the data generators all
use this module, so that a field made exact by one of them is exact for all the others. The arithmetic is
always done in the same order (integer coefficients first, one division by ``d h`` last), which keeps results
identical bit for bit wherever the stencil is applied.
"""

from __future__ import annotations

from typing import Tuple

import torch

from _physics_constrained.validation import check_choice, check_index, check_real

__all__ = ["neumann_stencil", "one_sided_derivative"]

# order -> (integer coefficients from the face node inward, denominator d): at the right face
# du/dx = sum_i c_i u_i / (d h); at the left face the same sum with the opposite sign.
_STENCILS = {1: ((1.0, -1.0), 1.0), 2: ((3.0, -4.0, 1.0), 2.0)}
_SIDES = ("left", "right")
_SIGN = {"left": -1.0, "right": 1.0}
# Tables built once: the stencil runs in every forward pass, where Python overhead is not negligible.
_NODES = {(side, order): tuple(range(order + 1)) if side == "left" else tuple(-1 - i for i in range(order + 1))
          for side in _SIDES for order in _STENCILS}
_ABS = {order: tuple(abs(c) for c in coeffs) for order, (coeffs, _) in _STENCILS.items()}
_SOLVE = {order: tuple(-c for c in coeffs[1:]) for order, (coeffs, _) in _STENCILS.items()}


def stencil_nodes(side: str, order: int) -> Tuple[int, ...]:
    """Node indices the stencil reads along its axis, face node first (negative from the right end)."""
    return _NODES[side, order]


def _combine(coeffs, values):
    """``sum c_i v_i`` with multiplications by 1 skipped and negative coefficients subtracted (first ``c`` > 0)."""
    acc = None
    for c, v in zip(coeffs, values):
        term = v if c == 1.0 or c == -1.0 else (c if c > 0 else -c) * v
        acc = term if acc is None else acc + term if c > 0 else acc - term
    return acc


def derivative_and_terms(u: torch.Tensor, dim: int, side: str, spacing: float, order: int):
    """One-sided ``du/dx`` at a face of ``u`` along ``dim``, and the sum of the stencil's absolute terms.

    The second result is the magnitude on which round-off acts (for relative errors). No argument checks: the
    callers inside the package pass validated rules.
    """
    coeffs, d = _STENCILS[order]
    nodes = [u.select(dim, i) for i in _NODES[side, order]]
    denom = d * spacing
    deriv = _SIGN[side] * _combine(coeffs, nodes) / denom
    terms = _combine(_ABS[order], [v.abs() for v in nodes]) / denom
    return deriv, terms


def face_value(u: torch.Tensor, dim: int, side: str, spacing: float, order: int, g) -> torch.Tensor:
    """The face node value that makes the one-sided ``du/dx`` of ``u`` equal ``g`` exactly (other nodes kept)."""
    coeffs, d = _STENCILS[order]
    inner = [u.select(dim, i) for i in _NODES[side, order][1:]]
    rhs = _combine(_SOLVE[order], inner) + _SIGN[side] * d * spacing * g
    return rhs if coeffs[0] == 1.0 else rhs / coeffs[0]


def neumann_stencil(side: str, spacing: float, order: int = 2) -> Tuple[Tuple[int, ...], Tuple[float, ...]]:
    """Nodes and weights of the one-sided ``du/dx`` at a face: ``du/dx = sum_i w_i u[nodes[i]]``.

    For building constraint rows or solver matrices (e.g. ProbConserv's flux constraints); to apply the
    stencil to a tensor use :func:`one_sided_derivative`.

    Parameters
    ----------
    side : {"left", "right"}
        The face: index 0 or the last index along the axis.
    spacing : float
        Grid spacing ``h > 0``.
    order : {1, 2}, default 2
        Order of the difference.

    Returns
    -------
    (tuple of int, tuple of float)
        Node indices from the face inward (negative from the right end: ``-1`` is the last node) and their
        weights ``sign * c_i / (d h)``.

    Raises
    ------
    ValueError
        ``side`` or ``order`` is not one of the allowed values, or ``spacing`` is not positive.
    TypeError
        ``spacing`` is not a real number.
    """
    check_choice(side, "side", _SIDES)
    check_choice(order, "order", tuple(_STENCILS))
    spacing = check_real(spacing, "spacing", positive=True)
    coeffs, d = _STENCILS[order]
    return _NODES[side, order], tuple(_SIGN[side] * c / (d * spacing) for c in coeffs)


def one_sided_derivative(u: torch.Tensor, side: str, spacing: float, dim: int = -1, order: int = 2) -> torch.Tensor:
    """The one-sided ``du/dx`` of ``u`` at a face: the quantity a :class:`~boon_ext.Neumann` condition prescribes.

    Parameters
    ----------
    u : torch.Tensor
        Real floating-point field with at least ``order + 1`` nodes along ``dim``.
    side : {"left", "right"}
        The face: index 0 or the last index along ``dim``.
    spacing : float
        Grid spacing ``h = (b - a) / (N - 1)`` of a grid that includes both end points.
    dim : int, default -1
        The axis of the derivative.
    order : {1, 2}, default 2
        Order of the difference.

    Returns
    -------
    torch.Tensor
        ``u``'s shape without ``dim``, same dtype: bit for bit what :func:`~boon_ext.boundary_error` measures and
        :func:`~boon_ext.enforce_boundary` makes equal to the prescribed value.

    Raises
    ------
    TypeError
        ``u`` is not a real floating-point tensor, or ``spacing``/``dim`` have the wrong type.
    ValueError
        ``side``/``order`` not allowed, ``spacing`` not positive, ``dim`` out of range, or too few nodes.
    """
    if not torch.is_tensor(u) or u.is_complex() or not u.is_floating_point():
        raise TypeError(f"u must be a real floating-point torch.Tensor, got {getattr(u, 'dtype', type(u).__name__)}")
    check_choice(side, "side", _SIDES)
    check_choice(order, "order", tuple(_STENCILS))
    spacing = check_real(spacing, "spacing", positive=True)
    dim = check_index(dim, "dim")
    if not -u.ndim <= dim < u.ndim:
        raise ValueError(f"dim must be an axis of u (ndim {u.ndim}), got {dim}")
    if u.shape[dim] < order + 1:
        raise ValueError(f"u must have at least {order + 1} nodes along dim {dim}, got shape {tuple(u.shape)}")
    return derivative_and_terms(u, dim, side, spacing, order)[0]
