"""Constraint rows from a ``boon_ext`` boundary spec: Dirichlet values and Neumann flux stencils.

Stacked with a conservation row (:func:`probconserv_ext.stack_constraints`), they let one ProbConserv update
enforce the conservation law and the wall conditions together: the posterior mean meets every row exactly. The
rows are the same discrete conditions a BOON model enforces: ``u[face] = g`` for a Dirichlet face and the
one-sided stencil ``du/dx ~ sum_i w_i u[i] = g`` (:func:`boon_ext.neumann_stencil`) for a Neumann face.
"""

from collections.abc import Mapping
from typing import Any, Optional

import torch

from _physics_constrained.validation import as_tensor, check_finite, check_index, eps_of
from boon_ext.conditions import BoundarySpec
from boon_ext.stencil import neumann_stencil
from .constraints import LinearConstraint

__all__ = ["boundary_constraint"]


def _spacing(grid: torch.Tensor, domain, side: str) -> float:
    """The uniform spacing of ``grid``, checked against a Neumann condition's ``domain``."""
    h = (grid[-1] - grid[0]) / (grid.numel() - 1)
    scale = float(grid.abs().max())
    tol = 64 * eps_of(grid.dtype) * max(scale, float(h))
    if float((torch.diff(grid) - h).abs().max()) > tol:
        raise ValueError("grid must be uniform for a Neumann face (its one-sided stencil assumes one spacing h), "
                         "got node gaps that differ")
    a, b = domain
    if abs(float(grid[0]) - a) > tol or abs(float(grid[-1]) - b) > tol:
        raise ValueError(f"grid must span the Neumann condition's domain {tuple(domain)} (the {side} face's "
                         f"derivative is in those units), got [{float(grid[0]):.6g}, {float(grid[-1]):.6g}]; give "
                         "the condition domain=(grid[0], grid[-1])")
    return float(h)


def boundary_constraint(spec: Any, grid: Any, values: Optional[Mapping] = None, *,
                        channel: Optional[int] = None) -> LinearConstraint:
    """Constraint rows for the Dirichlet and Neumann faces of a 1-D boundary spec.

    Parameters
    ----------
    spec : boon_ext.BoundarySpec, or the conditions (a condition, a list of them or their configs)
        The walls, as a BOON model takes them; conditions are resolved for one spatial axis. Periodic
        conditions are refused (they are not a value or flux row).
    grid : 1-D tensor or array, shape ``(n,)``
        Node positions, end points included, strictly increasing; uniform when a face is Neumann, spanning the
        condition's ``domain``. Its floating dtype is ``G``'s (float64 recommended).
    values : mapping from face key to tensor of shape ``(...)`` or float, optional
        Values of the faces without a constant (the ``boundary_values`` a BOON model takes: ``"left"``,
        ``"right"`` or the condition's own keys); their leading shape (batch, time slices) becomes ``b``'s. Keys no
        face reads are an error.
    channel : int, optional
        The output channel the field is, for conditions with per-channel values or a ``channels`` selection
        (required then); conditions that do not hold on this channel give no row.

    Returns
    -------
    LinearConstraint
        One row per face, in the spec's enforcement order (Neumann faces before Dirichlet ones, left before
        right), with ``b`` of shape ``(..., m)``: pass it to :class:`probconserv_ext.ProbConserv`, or stack it
        with a conservation row.

    Raises
    ------
    TypeError
        For a ``values`` that is not a mapping, non-numeric values or grid, a non-integer channel.
    ValueError
        For a spec with more than one spatial axis or a periodic face, no face on ``channel``, a grid too short for
        a stencil, not strictly increasing, or (for a Neumann face) not uniform or not spanning its domain, a
        missing or unread key in ``values``, values whose shapes do not broadcast, or a missing ``channel``.

    Examples
    --------
    >>> from boon_ext import Dirichlet, Neumann
    >>> walls = boundary_constraint([Dirichlet(left=1.0), Neumann(faces=("right",))], torch.linspace(0, 1, 65,
    ...                             dtype=torch.float64), {"right": torch.tensor([0.5, -0.5])})
    >>> walls.G.shape, walls.b.shape                        # a Neumann row (right), then a Dirichlet row (left)
    (torch.Size([2, 65]), torch.Size([2, 2]))
    """
    if not isinstance(spec, BoundarySpec):
        spec = BoundarySpec(spec, n_dim=1)
    if spec.n_dim != 1:
        raise ValueError(f"spec must be for a 1-D field (n_dim=1): the constraint acts on the last dimension's "
                         f"nodes, got n_dim={spec.n_dim}")
    periodic = [r for r in spec.rules if r.kind == "periodic"]
    if periodic:
        raise ValueError("spec must hold Dirichlet and Neumann faces only: a periodic condition is not a value or "
                         "flux row (build a periodic quadrature with conservation_constraint(grid, period=...))")
    x = check_finite(as_tensor(grid, "grid"), "grid")
    if x.ndim != 1 or x.numel() < 3:
        raise ValueError(f"grid must be a 1-D array of at least 3 nodes, got shape {tuple(x.shape)}")
    if not bool((torch.diff(x) > 0).all()):
        raise ValueError("grid must be strictly increasing")
    if channel is not None:
        channel = check_index(channel, "channel")
    if values is not None and not isinstance(values, Mapping):
        raise TypeError(f"values must be a mapping from face keys to values, got {type(values).__name__}")
    values = dict(values or {})
    n = x.numel()
    rows, rhs, read = [], [], set()
    for r in spec.rules:
        position = None
        if r.channels is not None or (r.constant is not None and len(r.constant) > 1):
            if channel is None:
                raise ValueError(f"channel must be given: the {r.kind} {r.side} face has per-channel values or a "
                                 f"channels selection ({r.channels})")
            if r.channels is not None:
                if channel not in r.channels:
                    continue
                position = r.channels.index(channel)
            else:
                position = channel
        G = torch.zeros(n, dtype=x.dtype)
        if r.kind == "dirichlet":
            G[0 if r.side == "left" else -1] = 1.0
        else:
            nodes, weights = neumann_stencil(r.side, _spacing(x, r.domain, r.side), order=r.order)
            G[list(nodes)] = torch.tensor(weights, dtype=x.dtype)
        if r.constant is not None:
            if len(r.constant) > 1 and position >= len(r.constant):
                raise ValueError(f"channel {channel} has no value in the {r.kind} {r.side} face's {len(r.constant)} "
                                 "per-channel values")
            v = torch.tensor(r.constant[0 if len(r.constant) == 1 else position], dtype=x.dtype)
        else:
            if r.key not in values:
                raise ValueError(f"values[{r.key!r}] is missing: the {r.kind} {r.side} face takes its value at call "
                                 f"time (given: {sorted(values)}, needed: {list(spec.required_keys)})")
            v = check_finite(as_tensor(values[r.key], f"values[{r.key!r}]", dtype=x.dtype), f"values[{r.key!r}]")
            read.add(r.key)
        rows.append(G)
        rhs.append(v)
    unread = sorted(set(values) - read, key=str)
    if unread:
        raise ValueError(f"values must hold only the keys of faces without a constant, got {unread} that no face "
                         f"reads (needed: {list(spec.required_keys)})")
    if not rows:
        raise ValueError(f"spec must hold at least one Dirichlet or Neumann face on channel {channel}, got none")
    try:
        lead = torch.broadcast_shapes(*[v.shape for v in rhs])
    except RuntimeError as err:
        raise ValueError(f"values must have leading shapes that broadcast together, got "
                         f"{[tuple(v.shape) for v in rhs]}") from err
    b = torch.stack([v.expand(lead) for v in rhs], dim=-1)
    return LinearConstraint(torch.stack(rows), b)
