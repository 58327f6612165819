"""Linear constraints ``G u = b`` and builders for conservation laws.

A conservation law ``u_t + div F = 0`` in integral form says that the total ``integral of u`` over the domain
changes only by the net boundary flux. On a grid, the integral is a quadrature ``g @ u``, so conservation is one
row of a linear constraint whose right-hand side ``b(t)`` is the conserved total (:func:`conserved_total`).
"""

import functools
from typing import Any, Optional

import torch

from _physics_constrained.validation import as_tensor, check_bool, check_finite, check_float_dtype, check_index
from .quadrature import quadrature_weights

__all__ = ["LinearConstraint", "ConstraintShape", "check_rhs", "conservation_constraint", "value_constraint",
           "stack_constraints", "conserved_total"]


def check_rhs(b: Any, m: int, name: str = "b", dtype: Optional[torch.dtype] = None, device: Any = None,
              finite: bool = True) -> torch.Tensor:
    """A right-hand side of ``m`` constraint rows: a tensor of shape ``(..., m)`` (a scalar counts as ``(1,)``).

    Parameters
    ----------
    b : tensor, array or float
    m : int
        Number of constraint rows.
    name : str
        The argument's name, for messages.
    dtype : torch.dtype, optional
    device : torch.device, optional
    finite : bool
        Check that ``b`` is finite (a host synchronisation; callers skip it while compiling).

    Returns
    -------
    torch.Tensor

    Raises
    ------
    TypeError
        If ``b`` is not numeric.
    ValueError
        If its last dimension is not ``m``, or (with ``finite``) it holds NaN or inf.
    """
    b = as_tensor(b, name, dtype=dtype, device=device)
    if b.ndim == 0:
        b = b.reshape(1)
    if b.shape[-1] != m:
        raise ValueError(f"{name} must have shape (..., m) with m = {m} constraint rows, got {tuple(b.shape)}")
    return check_finite(b, name) if finite else b


class ConstraintShape:
    """``m`` and ``n`` of an object that holds a constraint matrix ``G`` of shape ``(m, n)`` (a constraint, a layer)."""

    G: torch.Tensor

    @property
    def m(self) -> int:
        """Number of constraint rows."""
        return self.G.shape[0]

    @property
    def n(self) -> int:
        """Number of nodes (columns of ``G``)."""
        return self.G.shape[1]


class LinearConstraint(ConstraintShape):
    """A linear constraint ``G u = b`` on fields with ``n`` nodes.

    Parameters
    ----------
    G : tensor or array, shape ``(m, n)`` (or ``(n,)`` for one row)
        Constraint matrix, ``m`` rows (usually ``m << n``). No row may be zero.
    b : tensor, array or float, shape ``(..., m)``, optional
        Right-hand side, broadcast over the leading dimensions (batch, time slices, channels) of the
        prediction. May be left out here and given when the layer is called.
    allow_zero_rows : bool
        Accept zero rows (and no columns): for one rank's slab of a domain-decomposed constraint, where a row may
        vanish on the slab while it is non-zero on the whole field (:func:`probconserv_ext.slabs.constraint_slab`).

    Raises
    ------
    TypeError
        If ``G`` or ``b`` is not numeric.
    ValueError
        If ``G`` is not ``(m, n)``, not finite or has a zero row, or ``b`` does not end in ``m``.

    Attributes
    ----------
    G, b : torch.Tensor
    m, n : int
        Number of rows and of nodes.
    """

    def __init__(self, G: Any, b: Any = None, *, allow_zero_rows: bool = False):
        allow_zero_rows = check_bool(allow_zero_rows, "allow_zero_rows")
        G = as_tensor(G, "G")
        if G.ndim == 1:
            G = G[None, :]
        if G.ndim != 2 or G.shape[0] == 0 or (G.shape[1] == 0 and not allow_zero_rows):
            raise ValueError(f"G must have shape (m, n) with m, n >= 1, got {tuple(G.shape)}")
        check_finite(G, "G")
        if not allow_zero_rows:
            zero = (G == 0).all(dim=1)
            if bool(zero.any()):
                rows = torch.nonzero(zero).flatten().tolist()
                raise ValueError(f"G must have no zero row, but row(s) {rows} are zero")
        self.G = G
        self.b = None if b is None else self.check_rhs(b, "b")

    def check_rhs(self, b: Any, name: str = "b") -> torch.Tensor:
        """:func:`check_rhs` for this constraint's ``m``, in ``G``'s dtype and on its device.

        Parameters
        ----------
        b : tensor, array or float
            Candidate right-hand side, shape ``(..., m)``.
        name : str
            How messages call it.

        Returns
        -------
        torch.Tensor
            Finite, of shape ``(..., m)``.

        Raises
        ------
        TypeError, ValueError
            As :func:`check_rhs`.
        """
        return check_rhs(b, self.m, name, dtype=self.G.dtype, device=self.G.device)

    def with_b(self, b: Any) -> "LinearConstraint":
        """The same ``G`` with a new right-hand side.

        Parameters
        ----------
        b : tensor, array or float, shape ``(..., m)``

        Returns
        -------
        LinearConstraint

        Raises
        ------
        TypeError, ValueError
            As :func:`check_rhs`.
        """
        return LinearConstraint(self.G, b)

    def residual(self, u: torch.Tensor, b: Any = None) -> torch.Tensor:
        """``G u - b`` (``G u`` when there is no ``b``), in the dtype of ``u``.

        Parameters
        ----------
        u : torch.Tensor, shape ``(..., n)``
        b : tensor, array or float, shape ``(..., m)``, optional
            Overrides the constraint's own ``b``.

        Returns
        -------
        torch.Tensor, shape ``(..., m)``

        Raises
        ------
        ValueError
            If ``u`` does not end in ``n`` or ``b`` is invalid (:func:`check_rhs`).
        """
        b = self.b if b is None else self.check_rhs(b, "b")
        if u.shape[-1] != self.n:
            raise ValueError(f"u must have n = {self.n} nodes in its last dimension, got shape {tuple(u.shape)}")
        r = u @ self.G.to(u.dtype).mT
        return r if b is None else r - b.to(u.dtype)

    def to(self, *args: Any, **kwargs: Any) -> "LinearConstraint":
        """Move/cast ``G`` and ``b`` like :meth:`torch.Tensor.to`.

        Parameters
        ----------
        *args, **kwargs
            As for :meth:`torch.Tensor.to` (a dtype, a device, or both).

        Returns
        -------
        LinearConstraint
            A new constraint (the rows are not checked again).
        """
        out = LinearConstraint.__new__(LinearConstraint)
        out.G = self.G.to(*args, **kwargs)
        out.b = None if self.b is None else self.b.to(*args, **kwargs)
        return out

    def __repr__(self) -> str:
        bshape = None if self.b is None else tuple(self.b.shape)
        return f"LinearConstraint(m={self.m}, n={self.n}, b shape={bshape})"


def conservation_constraint(grid: Any, total: Any = None, rule: str = "trapezoid",
                            period: Any = None) -> LinearConstraint:
    """The conservation constraint ``integral of u over the domain = total``.

    Parameters
    ----------
    grid : 1-D tensor/array or tuple of axes
        Node positions (strictly increasing, not necessarily uniform); a tuple of 2 or 3 axes gives a
        tensor-product grid whose fields are flattened row-major to ``n = prod(len(axis))`` nodes
        (:func:`probconserv_ext.quadrature.flatten_field`).
    total : float or tensor of shape ``(...)``, optional
        Conserved total per leading index (e.g. one per time slice, from :func:`conserved_total`). Becomes
        ``b`` of shape ``(..., 1)``.
    rule : {"trapezoid", "rectangle"}
        Quadrature rule, see :func:`probconserv_ext.quadrature.quadrature_weights`.
    period : float or tuple, optional
        Period of periodic axes without a repeated end point.

    Returns
    -------
    LinearConstraint
        One row (``m = 1``) holding the quadrature weights.

    Raises
    ------
    TypeError, ValueError
        For an invalid grid, rule or period (:func:`probconserv_ext.quadrature.quadrature_weights`), or a
        non-numeric or non-finite ``total``.
    """
    w = quadrature_weights(grid, rule=rule, period=period)
    b = None
    if total is not None:
        b = as_tensor(total, "total", dtype=w.dtype)
        check_finite(b, "total")
        b = b[..., None]
    return LinearConstraint(w[None, :], b)


def value_constraint(n: int, index: Any, value: Any = None, dtype: Optional[torch.dtype] = None) -> LinearConstraint:
    """Rows ``u[index[k]] = value[..., k]``: known values (e.g. Dirichlet boundary values) as constraints.

    Parameters
    ----------
    n : int
        Number of nodes.
    index : int or sequence of int
        Node indices (negative indices count from the end); no duplicates. Integers only: ``bool`` and float
        entries raise ``TypeError`` (they would otherwise be read as node 0/1 or truncated).
    value : float or tensor of shape ``(..., len(index))``, optional
        Known values.
    dtype : torch.dtype, optional
        Defaults to the dtype of a floating ``value`` tensor, else torch's default dtype.

    Returns
    -------
    LinearConstraint

    Raises
    ------
    TypeError
        For a non-integer ``n`` or index entry (``bool``, float).
    ValueError
        For ``n < 1``, an index out of range, repeated or empty, or a non-finite ``value``.
    """
    n = check_index(n, "n")
    if n < 1:
        raise ValueError(f"n must be a positive number of nodes, got {n}")
    if isinstance(index, torch.Tensor) and index.ndim > 1:
        raise ValueError(f"index must be an int or a non-empty sequence of ints, got shape {tuple(index.shape)}")
    if isinstance(index, torch.Tensor) and (index.dtype == torch.bool or index.is_floating_point()):
        raise TypeError(f"index must be an integer (not bool or float), got a tensor of dtype {index.dtype}")
    scalar = not hasattr(index, "__iter__") and not hasattr(index, "__len__")
    try:
        entries = [index] if scalar or (isinstance(index, torch.Tensor) and index.ndim == 0) else list(index)
    except TypeError as err:
        raise TypeError(f"index must be an int or a sequence of ints, got {type(index).__name__}") from err
    idx = torch.as_tensor([check_index(i, "index") for i in entries], dtype=torch.long).reshape(-1)
    if idx.ndim != 1 or idx.numel() == 0:
        raise ValueError(f"index must be an int or a non-empty sequence of ints, got {index!r}")
    if bool(((idx < -n) | (idx >= n)).any()):
        raise ValueError(f"index entries must lie in [-{n}, {n}), got {idx.tolist()}")
    idx = idx % n
    if idx.unique().numel() != idx.numel():
        raise ValueError(f"index must not repeat a node, got {idx.tolist()}")
    if dtype is None:
        floating = isinstance(value, torch.Tensor) and value.is_floating_point()
        dtype = value.dtype if floating else torch.get_default_dtype()
    check_float_dtype(dtype, "dtype")
    G = torch.zeros(idx.numel(), n, dtype=dtype)
    G[torch.arange(idx.numel()), idx] = 1.0
    b = None
    if value is not None:
        b = as_tensor(value, "value", dtype=G.dtype)
        if b.ndim == 0:
            b = b.expand(idx.numel())
    return LinearConstraint(G, b)


def stack_constraints(*constraints: LinearConstraint) -> LinearConstraint:
    """Stack several constraints on the same nodes into one (several conserved quantities, known values).

    Parameters
    ----------
    *constraints : LinearConstraint
        All with the same ``n``; either all with ``b`` or all without.

    Returns
    -------
    LinearConstraint
        Rows in the order given; ``b`` concatenated along its last axis after broadcasting the leading axes.

    Raises
    ------
    TypeError
        If an argument is not a LinearConstraint.
    ValueError
        If none is given, the numbers of nodes differ, or only some have ``b``.
    """
    if len(constraints) == 1 and isinstance(constraints[0], (list, tuple)):
        constraints = tuple(constraints[0])
    if not constraints:
        raise ValueError("stack_constraints needs at least one constraint")
    for k, c in enumerate(constraints):
        if not isinstance(c, LinearConstraint):
            raise TypeError(f"constraints[{k}] must be a LinearConstraint, got {type(c).__name__}")
    n = constraints[0].n
    for k, c in enumerate(constraints):
        if c.n != n:
            raise ValueError(f"constraints[{k}] acts on {c.n} nodes, constraints[0] on {n}: all must agree")
    has_b = [c.b is not None for c in constraints]
    if any(has_b) and not all(has_b):
        raise ValueError("either every constraint passed to stack_constraints has b or none has")
    dtype = functools.reduce(torch.promote_types, [c.G.dtype for c in constraints])
    G = torch.cat([c.G.to(dtype) for c in constraints], dim=0)
    b = None
    if all(has_b):
        lead = torch.broadcast_shapes(*[c.b.shape[:-1] for c in constraints])
        b = torch.cat([c.b.to(dtype).expand(*lead, c.m) for c in constraints], dim=-1)
    return LinearConstraint(G, b)


def conserved_total(times: Any, initial_total: Any, net_inflow: Any = None, *, flux_left: Any = None,
                    flux_right: Any = None) -> torch.Tensor:
    """Conserved total ``b(t) = b(t0) + integral_{t0}^{t} (net boundary inflow) dt``.

    The integral form of ``u_t + div F = 0`` gives ``d/dt integral(u) = -(boundary integral of F . normal)``.
    In 1-D on ``[x0, xN]`` the net inflow is ``F(x0, t) - F(xN, t)``. The time integral is computed with the
    cumulative trapezoid rule on the given (possibly non-uniform) times.

    Parameters
    ----------
    times : 1-D tensor/array, shape ``(T,)``
        Strictly increasing time points; ``times[0]`` is the time of ``initial_total``.
    initial_total : float or tensor of shape ``(...)``
        Total at ``times[0]``.
    net_inflow : tensor of shape ``(..., T)`` or callable ``t -> tensor``, optional
        Net flux into the domain at each time. Give this or ``flux_left``/``flux_right``.
    flux_left, flux_right : tensor of shape ``(..., T)`` or callable, optional
        1-D fluxes ``F`` at the left and right boundary (positive in the +x direction); a missing one is 0.

    Returns
    -------
    torch.Tensor
        ``b`` of shape ``(..., T)``; pass ``b[..., None]`` (one row) as the right-hand side per time slice.

    Raises
    ------
    TypeError
        For non-numeric input.
    ValueError
        For times that are not strictly increasing, fluxes of the wrong shape, non-finite values, or both
        ``net_inflow`` and ``flux_left``/``flux_right`` (or neither).

    Examples
    --------
    Flux signs for heat, ``u_t = -F_x`` with ``F = -k u_x`` on ``[0, L]``: ``F`` is positive in ``+x`` at both
    walls, so heat entering at the left wall at rate ``q`` is ``flux_left = F(0) = q``, and heat entering at the
    right wall at rate ``q`` is ``flux_right = F(L) = -q``. The matching Neumann values (``boon_ext.Neumann``,
    the derivative along ``+x``) are ``u_x(0) = -F(0) / k = -q / k`` and ``u_x(L) = -F(L) / k = q / k``.

    >>> times = torch.linspace(0.0, 1.0, 5)
    >>> b = conserved_total(times, 2.0, flux_left=3.0 * torch.ones(5))     # 3 units of heat per unit time enter
    >>> b                                                                   # at the left wall: the total grows
    tensor([2.0000, 2.7500, 3.5000, 4.2500, 5.0000])
    >>> conserved_total(times, 2.0, flux_right=3.0 * torch.ones(5))[-1]    # F(L) = 3 > 0: heat leaves on the right
    tensor(-1.)

    docs/guide/constraints.md ("Flux signs") checks both conventions on an exact solution of the heat equation.
    """
    t = as_tensor(times, "times")
    if t.ndim != 1 or t.numel() < 1:
        raise ValueError(f"times must be a non-empty 1-D array, got shape {tuple(t.shape)}")
    check_finite(t, "times")
    if t.numel() > 1 and not bool((torch.diff(t) > 0).all()):
        raise ValueError("times must be strictly increasing")

    def evaluate(f, name):
        if f is None:
            return None
        v = f(t) if callable(f) else f
        v = as_tensor(v, name, dtype=t.dtype)
        if v.ndim == 0 or v.shape[-1] != t.numel():
            raise ValueError(f"{name} must have shape (..., T) with T = {t.numel()} time points, got {tuple(v.shape)}")
        return check_finite(v, name)

    if net_inflow is not None and (flux_left is not None or flux_right is not None):
        raise ValueError("give either net_inflow or flux_left/flux_right, not both")
    q = evaluate(net_inflow, "net_inflow")
    if q is None:
        fl, fr = evaluate(flux_left, "flux_left"), evaluate(flux_right, "flux_right")
        if fl is None and fr is None:
            raise ValueError("one of net_inflow, flux_left or flux_right is required")
        q = (fl if fl is not None else 0.0) - (fr if fr is not None else 0.0)
        q = torch.as_tensor(q, dtype=t.dtype)
    b0 = check_finite(as_tensor(initial_total, "initial_total", dtype=t.dtype), "initial_total")
    dt = torch.diff(t)
    increments = 0.5 * (q[..., 1:] + q[..., :-1]) * dt
    cum = torch.cat([torch.zeros_like(q[..., :1]), torch.cumsum(increments, dim=-1)], dim=-1)
    return b0[..., None] + cum
