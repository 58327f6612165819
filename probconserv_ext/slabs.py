"""Slab geometry of a domain-decomposed field: which nodes a rank owns, its part of a constraint, and gathering.

The nodes (of the row-major flattened field) are split into contiguous slabs, one per rank of a process group, with
sizes that differ by at most one. A rank's part of a constraint is the columns of ``G`` for its nodes; the
trapezoid conservation row is built from the rank's slab of the grid plus one ghost node on each side, so that no
rank forms the global weights.
"""

from typing import Any, Optional, Tuple

import torch

from _physics_constrained.validation import as_tensor, check_finite, check_int
from .collectives import GroupCollectives, ProcessGroup, group_info
from .constraints import LinearConstraint
from .quadrature import quadrature_weights

__all__ = ["slab_bounds", "constraint_slab", "conservation_slab", "gather_slab"]


def slab_bounds(n: int, group: Optional[ProcessGroup] = None, *, rank: Optional[int] = None,
                world_size: Optional[int] = None) -> Tuple[int, int]:
    """``(start, stop)`` of this rank's contiguous slab of ``n`` nodes (sizes differ by at most one).

    Parameters
    ----------
    n : int
        Global number of nodes (of the flattened field: row-major, so a slab of rows of a 2-D/3-D field along
        its first axis is contiguous).
    group : ProcessGroup, optional
        Used for the rank and world size unless both are given.
    rank, world_size : int, optional

    Returns
    -------
    (int, int)
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if rank is None or world_size is None:
        rank, world_size = group_info(group)
    rank, world_size = check_int(rank, "rank", minimum=0), check_int(world_size, "world_size", minimum=1)
    if not (0 <= rank < world_size):
        raise ValueError(f"rank must lie in [0, world_size = {world_size}), got {rank}")
    q, r = divmod(n, world_size)
    start = rank * q + min(rank, r)
    return start, start + q + (1 if rank < r else 0)


def constraint_slab(constraint: LinearConstraint, start: int, stop: int) -> LinearConstraint:
    """The columns ``start:stop`` of a global constraint (its part of each row), keeping ``b``.

    Parameters
    ----------
    constraint : LinearConstraint
    start, stop : int

    Returns
    -------
    LinearConstraint
        ``G[:, start:stop]``; a row may be zero on a slab (the zero-row check is made on the whole ``G`` by
        :class:`DistributedProbConserv`).
    """
    if not isinstance(constraint, LinearConstraint):
        raise TypeError(f"constraint must be a LinearConstraint, got {type(constraint).__name__}")
    start, stop = check_int(start, "start"), check_int(stop, "stop")
    if not (0 <= start <= stop <= constraint.n):
        raise ValueError(f"start, stop must satisfy 0 <= start <= stop <= n = {constraint.n}, got {start}, {stop}")
    return LinearConstraint(constraint.G[:, start:stop], constraint.b, allow_zero_rows=True)


def conservation_slab(grid: Any, start: int, stop: int, total: Any = None) -> LinearConstraint:
    """This rank's part of the trapezoid conservation constraint, from its slab of the grid plus one ghost node.

    Only ``grid[start-1 : stop+1]`` (of the first axis) is read, so a rank never builds the global weights.

    Parameters
    ----------
    grid : 1-D tensor/array, or tuple of 2 or 3 axes
        Node positions (strictly increasing); for a tuple, the slab is the rows ``start:stop`` of the first axis
        and the field is flattened row-major (:func:`probconserv_ext.quadrature.flatten_field`), so the slab is
        contiguous.
    start, stop : int
        Rows of the first axis held by this rank (e.g. from :func:`slab_bounds` of its length).
    total : float or tensor of shape ``(...)``, optional
        The conserved total (global), becomes ``b`` of shape ``(..., 1)``.

    Returns
    -------
    LinearConstraint
        One row: the slab's trapezoid weights, equal to the corresponding columns of
        :func:`~probconserv_ext.constraints.conservation_constraint` ``(grid)``.
    """
    axes = list(grid) if isinstance(grid, (tuple, list)) else [grid]
    first = as_tensor(axes[0], "grid")
    if first.ndim != 1 or first.numel() < 2:
        raise ValueError(f"grid: the first axis must be 1-D with at least 2 nodes, got shape {tuple(first.shape)}")
    n = first.numel()
    start, stop = check_int(start, "start"), check_int(stop, "stop")
    if not (0 <= start <= stop <= n):
        raise ValueError(
            f"start, stop must satisfy 0 <= start <= stop <= {n} (rows of the first axis), got {start}, {stop}"
        )
    lo, hi = max(start - 1, 0), min(stop + 1, n)
    if hi - lo < 2:  # an empty slab, or one node without a neighbour in the piece
        lo, hi = max(min(lo, n - 2), 0), max(hi, min(lo + 2, n))
    # Interior nodes of the piece get (x[i+1] - x[i-1]) / 2 from their ghost neighbours; a piece end is a
    # global end whenever no ghost exists there, so its half-cell weight is the global one too.
    w = quadrature_weights(first[lo:hi])[start - lo:stop - lo]
    if len(axes) > 1:
        rest = quadrature_weights(tuple(axes[1:])) if len(axes) > 2 else quadrature_weights(axes[1])
        w = (w[:, None] * rest.to(w.dtype)[None, :]).reshape(-1)
    b = None
    if total is not None:
        b = check_finite(as_tensor(total, "total", dtype=w.dtype), "total")[..., None]
    return LinearConstraint(w[None, :], b, allow_zero_rows=True)


def gather_slab(slab: torch.Tensor, group: Optional[ProcessGroup] = None, dim: int = -1) -> torch.Tensor:
    """All-gather slabs of possibly different lengths along ``dim`` into the global tensor (on every rank).

    Parameters
    ----------
    slab : torch.Tensor
        This rank's slab; all other dimensions must agree across ranks.
    group : ProcessGroup, optional
    dim : int

    Returns
    -------
    torch.Tensor
        The slabs concatenated in rank order.
    """
    collectives = GroupCollectives(group)
    if not isinstance(slab, torch.Tensor):
        raise TypeError(f"slab must be a torch.Tensor, got {type(slab).__name__}")
    dim = check_int(dim, "dim")
    slab = slab.movedim(dim, -1).contiguous()
    length = torch.tensor([slab.shape[-1]], dtype=torch.int64, device=slab.device)
    lengths = [int(x) for x in collectives.all_gather(length)]
    # all_gather needs equal shapes: pad each slab to the longest and trim after.
    padded = torch.nn.functional.pad(slab, (0, max(lengths) - slab.shape[-1]))
    parts = collectives.all_gather(padded)
    out = torch.cat([p[..., :k] for p, k in zip(parts, lengths)], dim=-1)
    return out.movedim(-1, dim)
