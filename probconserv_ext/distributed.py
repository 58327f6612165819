"""Domain-decomposed ProbConserv on ``torch.distributed``: each rank holds a slab of the nodes.

With the nodes split into contiguous slabs ``u = (u_1, ..., u_P)`` (one per rank) and a covariance that couples
slabs only through a global low-rank factor (diagonal, or ``U U^T + diag(d)`` with ``U`` split by rows), every
quantity of the update that is not per-node is a sum over slabs::

    G mu             = sum_p G_p mu_p                              (m)
    G Sigma G^T      = sum_p G_p D_p G_p^T + C^T C,   C = sum_p U_p^T G_p^T       (m x m, r x m)
    reference, scale = sum_p ...                                   (m each)

so one all-reduce of ``3 m + m^2 (+ r m)`` numbers per field gives every rank the same ``m x m`` system, and each
rank then forms its own slab of ``Sigma G^T`` and of the posterior (mean, covariance factor ``W``) locally. The
arithmetic after the reduction is the single-process layer's (:func:`probconserv_ext.update.factor_update`), so the
result equals :class:`~probconserv_ext.layer.ProbConserv` on the gathered field up to the order of summation.

References
----------
Hansen, Maddix, Alizadeh, Gupta, Mahoney (2023). Learning physical models that can respect conservation laws.
ICML 2023.
"""

import math

import torch
import torch.distributed as dist
from torch.distributions import MultivariateNormal

from _physics_constrained.validation import as_tensor, check_finite
from .constraints import LinearConstraint
from .quadrature import quadrature_weights
from .covariance import DiagonalCovariance, LowRankCovariance
from .gaussian import ConstrainedGaussian
from .layer import ProbConserv
from .update import factor_update

__all__ = ["DistributedProbConserv", "SlabConstrainedGaussian", "slab_bounds", "constraint_slab", "conservation_slab",
           "gather_slab"]

# Batch dimensions the agreement check can describe; more are refused with a clear message.
_MAX_BATCH_DIMS = 8


def _group_info(group):
    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError(
            "group: torch.distributed is not initialized; call torch.distributed.init_process_group (e.g. under "
            "torchrun) before building or calling a distributed layer"
        )
    return dist.get_rank(group), dist.get_world_size(group)


def slab_bounds(n, group=None, *, rank=None, world_size=None):
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
        rank, world_size = _group_info(group)
    if not (0 <= rank < world_size):
        raise ValueError(f"rank must lie in [0, world_size = {world_size}), got {rank}")
    q, r = divmod(n, world_size)
    start = rank * q + min(rank, r)
    return start, start + q + (1 if rank < r else 0)


def constraint_slab(constraint, start, stop):
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
    if not (0 <= start <= stop <= constraint.n):
        raise ValueError(f"start, stop must satisfy 0 <= start <= stop <= n = {constraint.n}, got {start}, {stop}")
    return _raw_constraint(constraint.G[:, start:stop], constraint.b)


def conservation_slab(grid, start, stop, total=None):
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
    return _raw_constraint(w[None, :], b)


def gather_slab(slab, group=None, dim=-1):
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
    _, world = _group_info(group)
    if not isinstance(slab, torch.Tensor):
        raise TypeError(f"slab must be a torch.Tensor, got {type(slab).__name__}")
    slab = slab.movedim(dim, -1).contiguous()
    length = torch.tensor([slab.shape[-1]], dtype=torch.int64, device=slab.device)
    lengths = [torch.zeros_like(length) for _ in range(world)]
    dist.all_gather(lengths, length, group=group)
    lengths = [int(x) for x in lengths]
    longest = max(lengths)
    # all_gather needs equal shapes: pad each slab to the longest and trim after.
    padded = torch.nn.functional.pad(slab, (0, longest - slab.shape[-1]))
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded, group=group)
    out = torch.cat([p[..., :k] for p, k in zip(parts, lengths)], dim=-1)
    return out.movedim(-1, dim)


def _raw_constraint(G, b):
    # A LinearConstraint without the per-slab zero-row check: a row may vanish on one slab (e.g. a value
    # constraint on a node of another rank) while being non-zero globally.
    out = LinearConstraint.__new__(LinearConstraint)
    out.G = G
    out.b = None if b is None else LinearConstraint._check_b(out, b, "b")
    return out


class _AllReduceSum(torch.autograd.Function):
    """``sum_p t_p`` on every rank. With the global loss the sum of the ranks' losses, the gradient with respect
    to each rank's ``t_p`` is the sum over ranks of the gradients with respect to the total."""

    @staticmethod
    def forward(ctx, t, group):
        ctx.group = group
        t = t.clone()
        dist.all_reduce(t, group=group)
        return t

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class DistributedProbConserv(ProbConserv):
    """ProbConserv on a field split into slabs over the ranks of a ``torch.distributed`` process group.

    Every rank builds the layer with its slab ``G_p`` (columns of ``G`` for its nodes) and calls it with its slab of
    the prediction; each gets its slab of the posterior. The update needs one all-reduce of ``3 m + m^2`` numbers
    per field for a diagonal covariance (``+ r m`` for a rank-``r`` factor), plus a small agreement check, so the
    communication does not grow with the number of nodes. Construction and every call are collective: all ranks of
    the group must take part, with the same batch shape, ``m``, rank ``r``, method and noise.

    Parameters
    ----------
    constraint_slab : LinearConstraint or tensor of shape ``(m, n_p)``
        This rank's columns of ``G`` (see :func:`constraint_slab`); its ``b`` (global, shape ``(..., m)``) is used
        unless ``b`` is passed to ``forward``. A row may be zero on some ranks, not on all.
    noise : float
        Constraint variance ``s2 >= 0`` (the same on every rank).
    method : {"probconserv", "hardc"}
    group : ProcessGroup, optional
        The ranks sharing the field (default: the whole world).
    learn_noise, compute_dtype, validate
        As in :class:`~probconserv_ext.layer.ProbConserv`.

    Notes
    -----
    Accepted priors are those whose covariance is a per-node diagonal or a low-rank-plus-diagonal with the
    factor split by rows: ``variance=``, ``cov_factor=``/``cov_diag=``, ``samples=`` (ensemble members' slabs),
    ``Normal`` and ``LowRankMultivariateNormal``. A dense covariance couples every pair of slabs and is refused, as
    is ``nonnegative=True`` (its active-set loop would need a collective per iteration). Invalid input on any rank
    raises the same ``ValueError`` on every rank instead of leaving the others waiting in a collective.

    References
    ----------
    Hansen, Maddix, Alizadeh, Gupta, Mahoney (2023). Learning physical models that can respect conservation laws.
    ICML 2023.

    Examples
    --------
    >>> start, stop = slab_bounds(n)                    # under torchrun, after init_process_group
    >>> layer = DistributedProbConserv(constraint_slab(conservation_constraint(grid), start, stop))
    >>> post = layer(mean[..., start:stop], variance=var[..., start:stop], b=total)
    >>> post.constraint_residual()                      # global G mean - b, identical on every rank
    """

    def __init__(self, constraint_slab, noise=0.0, method="probconserv", group=None, *, learn_noise=False,
                 compute_dtype=torch.float64, validate=True):
        if isinstance(constraint_slab, LinearConstraint):
            G, b = constraint_slab.G, constraint_slab.b
        elif isinstance(constraint_slab, torch.distributions.Distribution) or constraint_slab is None:
            raise TypeError(f"constraint_slab must be a LinearConstraint or a tensor (m, n_p), got {constraint_slab!r}")
        else:
            G, b = as_tensor(constraint_slab, "constraint_slab"), None
        if G.ndim == 1:
            G = G[None, :]
        if G.ndim != 2 or G.shape[0] == 0:
            raise ValueError(f"constraint_slab must have shape (m, n_p) with m >= 1, got {tuple(G.shape)}")
        check_finite(G, "constraint_slab")
        self._group = group
        rank, world = _group_info(group)
        super().__init__(_raw_constraint(G, b), noise=noise, method=method, nonnegative=False,
                         learn_noise=learn_noise, compute_dtype=compute_dtype, validate=validate)
        self.rank, self.world_size = rank, world
        # Collective checks at construction: the same m, noise and method everywhere, and no row of G zero on
        # every slab (the single-process LinearConstraint refuses zero rows).
        m = self.G.shape[0]
        meth = float(("probconserv", "hardc").index(method))
        spec = torch.tensor([m, float(self.noise.detach()), meth, self.G.dtype.itemsize], dtype=torch.float64)
        both = torch.cat([spec, -spec])
        dist.all_reduce(both, op=dist.ReduceOp.MAX, group=group)
        if not torch.equal(both[:4], -both[4:]):
            raise ValueError(
                "constraint_slab, noise and method must agree on every rank (same number of rows m, same noise, "
                f"same method, same compute_dtype); this rank has m = {m}, noise = {float(spec[1])}, method = "
                f"{method!r}, compute_dtype = {compute_dtype}"
            )
        rows = torch.zeros(m, dtype=torch.float64)
        if self.G.shape[1]:
            rows = self.G.abs().sum(-1).double()
        dist.all_reduce(rows, group=group)
        n_total = torch.tensor([float(self.G.shape[1])], dtype=torch.float64)
        dist.all_reduce(n_total, group=group)
        self._n_total = int(n_total)  # the global n, for the round-off tolerances of the solve
        if bool((rows == 0).any()):
            raise ValueError(
                f"constraint_slab: row(s) {torch.nonzero(rows == 0).flatten().tolist()} of G are zero on every rank"
            )
        self.last_comm_bytes = 0

    @property
    def group(self):
        return self._group

    def extra_repr(self):
        return f"m={self.m}, n_slab={self.n}, method={self.method!r}, rank={self.rank}/{self.world_size}"

    # ------------------------------------------------------------------ collective helpers
    def _all_reduce(self, t):
        """Sum over the group; differentiable when autograd needs it (the gradient is summed back over ranks)."""
        if torch.is_grad_enabled() and t.requires_grad:
            return _AllReduceSum.apply(t, self._group)
        t = t.clone()
        dist.all_reduce(t, group=self._group)
        return t

    def _agree(self, error, spec):
        """Collective check that every rank parsed its input and has the same shapes; raises on all ranks."""
        spec = torch.as_tensor(spec, dtype=torch.float64)
        flag = torch.tensor([0.0 if error is None else 1.0], dtype=torch.float64)
        v = torch.cat([flag, spec, -spec])
        dist.all_reduce(v, op=dist.ReduceOp.MAX, group=self._group)
        self.last_comm_bytes += v.numel() * v.element_size()
        if error is not None:
            raise error
        if float(v[0]) > 0:
            raise ValueError("invalid input on another rank of the group (its own error message says which argument)")
        k = spec.numel()
        if not torch.equal(v[1:1 + k], -v[1 + k:]):
            raise ValueError(
                "the ranks disagree on the shape of the prediction: batch shape, ensemble size or covariance rank r "
                f"must be the same on every rank (this rank: batch shape and r = {spec.long().tolist()})"
            )

    # ------------------------------------------------------------------ the update
    def _parse(self, mean, variance, cov_factor, cov_diag, samples, b):
        if isinstance(mean, MultivariateNormal):
            raise ValueError(
                "mean: a MultivariateNormal has a dense covariance, which couples every pair of slabs; the "
                "distributed layer takes a diagonal (variance=, Normal) or a low-rank-plus-diagonal covariance "
                "(cov_factor=/cov_diag=, samples=, LowRankMultivariateNormal)"
            )
        prior = self._prior(mean, variance, None, cov_factor, cov_diag, samples)
        if not isinstance(prior.covariance, (DiagonalCovariance, LowRankCovariance)):
            raise ValueError(
                f"mean: the distributed layer needs a diagonal or low-rank-plus-diagonal prior covariance, got "
                f"{type(prior.covariance).__name__} (chaining distributed layers: stack the constraints instead)"
            )
        # b may not enlarge the prediction (the posterior keeps the prediction's shape, as in ProbConserv).
        b = self._check_rhs_shape(self._rhs(b), prior.batch_shape)
        batch = prior.batch_shape
        if len(batch) > _MAX_BATCH_DIMS:
            raise ValueError(f"mean may have at most {_MAX_BATCH_DIMS} leading dimensions, got {len(batch)}")
        return prior, b, batch

    def forward(self, mean=None, variance=None, *, covariance=None, cov_factor=None, cov_diag=None, samples=None,
                b=None):
        """Apply the update to this rank's slab (collective: every rank of the group must call it).

        Parameters
        ----------
        mean : torch.Tensor of shape ``(..., n_p)``, or a distribution
            This rank's slab of the mean; or a ``Normal`` / ``LowRankMultivariateNormal`` over the slab.
        variance : torch.Tensor, shape ``(..., n_p)``, optional
            Per-node variances of the slab.
        covariance : None
            Refused (a dense covariance couples all slabs).
        cov_factor, cov_diag : torch.Tensor, shapes ``(..., n_p, r)`` and ``(..., n_p)``, optional
            Rows of the global factor ``U`` for this slab, and the slab's diagonal.
        samples : torch.Tensor, shape ``(S, ..., n_p)``, optional
            The slab of every ensemble member.
        b : torch.Tensor, shape ``(..., m)``, optional
            Global right-hand side (the same on every rank).

        Returns
        -------
        SlabConstrainedGaussian
            This rank's slab of the posterior.
        """
        self.last_comm_bytes = 0
        error, prior, spec = None, None, [0.0] * (_MAX_BATCH_DIMS + 2)
        try:
            if covariance is not None:
                raise ValueError(
                    "covariance: a dense covariance couples every pair of slabs; pass variance= or "
                    "cov_factor=/cov_diag= (a low-rank factor split by rows)"
                )
            prior, b, batch = self._parse(mean, variance, cov_factor, cov_diag, samples, b)
            r = prior.covariance.factor.shape[-1] if isinstance(prior.covariance, LowRankCovariance) else 0
            spec = [len(batch), *batch, *([0] * (_MAX_BATCH_DIMS - len(batch))), r]
        except (ValueError, TypeError) as err:
            error = err
        self._agree(error, spec)

        G, noise = self.G, self.noise
        mu, cov = prior._loc, prior.covariance
        batch = torch.Size(int(x) for x in spec[1:1 + int(spec[0])])
        GG = (G * G).mT
        low = None
        if self.method == "hardc":
            SG = G.mT
            parts = [G @ G.mT, (G * G).sum(-1)]
        elif isinstance(cov, LowRankCovariance):
            d = cov.diag
            SG = d[..., :, None] * G.mT
            low = cov.factor.mT @ G.mT  # (..., r, m): summed over slabs, then C^T C joins G Sigma G^T
            parts = [(SG.mT @ G.mT).mT, cov.diagonal() @ GG, low]
        else:
            SG = cov.matmul(G.mT)
            parts = [(SG.mT @ G.mT).mT, cov.diagonal() @ GG]
        parts = [mu @ G.mT, mu.abs() @ G.abs().mT] + parts
        shapes = [p.shape[-1:] if k != 2 and k != 4 else p.shape[-2:] for k, p in enumerate(parts)]
        flat = torch.cat([p.expand(*batch, *s).reshape(*batch, -1) for p, s in zip(parts, shapes)], dim=-1)
        self.last_comm_bytes += flat.numel() * flat.element_size()
        flat = self._all_reduce(flat)
        sums, offset = [], 0
        for s in shapes:
            k = math.prod(s)
            sums.append(flat[..., offset:offset + k].reshape(*batch, *s))
            offset += k
        Gmu, scale, GSG, reference = sums[:4]
        if low is not None:
            C = sums[4]
            GSG = GSG + C.mT @ C
            SG = SG + cov.factor @ C
        residual = Gmu - b
        factors = factor_update(GSG, SG, residual, noise, reference + noise, scale + b.abs(), n_nodes=self._n_total)
        loc = mu - factors.correction(residual)
        return SlabConstrainedGaussian(prior, G, b, noise, loc, None if self.method == "hardc" else factors,
                                       self.method, prior.out_dtype, self)


class SlabConstrainedGaussian(ConstrainedGaussian):
    """One rank's slab of a :class:`~probconserv_ext.gaussian.ConstrainedGaussian`, from
    :class:`DistributedProbConserv`.

    ``mean``, ``variance`` and ``covariance`` are the slab's (marginals of the global posterior); methods that need
    the whole field (``constraint_residual``, ``update_samples``, ``rsample``) are collective and give each rank its
    slab. ``log_prob`` of a slab is not a density of the field and is refused. In ``rsample`` the draws shared by
    all slabs (latent draws of a low-rank prior, constraint noise) come from the group's first rank; the per-node
    draws come from each rank's generator, so seed the generators differently on each rank.

    Parameters
    ----------
    prior, G, b, noise, loc, factors, method, out_dtype
        As in :class:`~probconserv_ext.gaussian.ConstrainedGaussian`, with ``G``, ``loc``, ``factors.W`` and the
        prior restricted to the slab.
    layer : DistributedProbConserv
        The layer (for its process group).
    """

    def __init__(self, prior, G, b, noise, loc, factors, method, out_dtype, layer):
        self._layer = layer
        super().__init__(prior, G, b, noise, loc, factors, method, out_dtype)

    def constraint_residual(self):
        """Global ``G mean - b`` of shape ``(..., m)``, the same on every rank (collective)."""
        return self._out(self._layer._all_reduce(self._loc @ self.G.mT) - self.b)

    def _apply(self, u, generator=None, perturb=True):
        if self.factors is None:
            return u + (self._loc - self.prior._loc)
        r = self._layer._all_reduce(u @ self.G.mT) - self.b
        if perturb and self.method == "probconserv" and bool(self.noise > 0):
            # The constraint noise is one draw per row for the whole field: rank 0 of the group draws it.
            e = torch.randn(r.shape, dtype=r.dtype, device=r.device, generator=generator)
            dist.broadcast(e, src=dist.get_global_rank(self._layer.group, 0) if self._layer.group else 0,
                           group=self._layer.group)
            r = r + self.noise.sqrt() * e
        return u - self.factors.correction(r)

    def _rsample_compute(self, sample_shape, generator=None):
        prior = self.prior
        cov = prior.covariance
        if isinstance(cov, LowRankCovariance):
            # The r latent draws multiply every slab of the factor: they must be the same on all ranks.
            U = cov.factor
            z = cov._randn(tuple(sample_shape), (*cov.batch_shape, U.shape[-1], 1), generator)
            dist.broadcast(z, src=dist.get_global_rank(self._layer.group, 0) if self._layer.group else 0,
                           group=self._layer.group)
            local = cov.diag.sqrt() * cov._randn(tuple(sample_shape), (*cov.batch_shape, cov.n), generator)
            u = prior._loc + (U @ z).squeeze(-1) + local
        else:
            u = prior._rsample_compute(sample_shape, generator)
        return self._apply(u, generator)

    def log_prob(self, value):
        raise NotImplementedError(
            "log_prob of a slab is not a density of the field; gather the slabs (gather_slab) and use "
            "ProbConserv on one process, or sum per-node likelihoods (gaussian_nll with joint=False) over ranks"
        )
