"""The ProbConserv layer: a post-hoc Bayesian update that makes a Gaussian prediction satisfy ``G u = b``."""

from typing import Any, Optional, Tuple, Union

import torch
from torch import nn

from _physics_constrained.validation import (COMPUTE_DTYPES, as_tensor, check_bool, check_broadcasts_to,
                                              check_compute_dtype, check_finite, check_nonnegative, compiling, is_bool)
from .collectives import LOCAL
from .constraints import ConstraintShape, LinearConstraint, check_rhs
from .gaussian import ConstrainedGaussian, StructuredGaussian
from .methods import resolve_method
from .nonnegative import nonnegative_active_set
from .priors import PriorReader
from .update import factor_update, refine_to_roundoff, residual_tolerance

__all__ = ["ProbConserv"]

# Tensor arguments also accept arrays and numbers (converted by the validation vocabulary).
Tensorish = Optional[Union[torch.Tensor, Any]]
# A prediction: a mean tensor or a distribution (torch's Normal, (LowRank)MultivariateNormal, a StructuredGaussian).
Prediction = Optional[Union[torch.Tensor, torch.distributions.Distribution]]


class ProbConserv(nn.Module, ConstraintShape):
    """Enforce a linear constraint ``G u = b`` on a Gaussian prediction by a Bayesian update.

    With the prediction ``N(mu, Sigma)`` on ``n`` nodes and ``A = s2 I + G Sigma G^T``::

        mu~    = mu - Sigma G^T A^-1 (G mu - b)
        Sigma~ = Sigma - Sigma G^T A^-1 G Sigma

    ``s2 = noise = 0`` enforces the constraint exactly; ``s2 > 0`` treats it as a noisy observation.
    Diagonal and low-rank-plus-diagonal covariances go through the Woodbury identity: ``O(n m^2)`` time, ``O(n m)``
    memory, no ``n x n`` matrix. Leading dimensions (batch, time slices, channels) are batched.

    Parameters
    ----------
    constraint : LinearConstraint
        ``G`` of shape ``(m, n)``; its ``b`` (shape ``(..., m)``) is used unless ``b`` is passed to ``forward``.
    noise : float
        Constraint variance ``s2 >= 0``.
    method : {"probconserv", "hardc"}
        ``"hardc"`` is the HardC baseline: least-squares projection of the mean (``Sigma`` replaced by ``I``),
        covariance unchanged.
    nonnegative : bool
        Keep the mean non-negative while conserving exactly (diagonal covariance; one conservation row, plus
        optional rows fixing single nodes such as known boundary values); see :mod:`probconserv_ext.nonnegative`.
    learn_noise : bool
        Make the noise a learnable parameter (stored as its logarithm; needs ``noise > 0``).
    compute_dtype : torch.dtype
        Dtype of the internal computation, ``torch.float32`` or ``torch.float64`` (the default); results come back in
        the input dtype. Half precision is refused here and on every other path that sets it (the attribute,
        ``.half()``/``.to(dtype)``, ``load_state_dict``): a conservation update in float16 conserves only to about
        1e-3, and its round-off check could not fail.
    validate : bool
        Check inputs (finite, non-negative and not subnormal variances, symmetric PSD dense covariance: ``O(n^3)``
        for dense input).

    The switches must be booleans (a string such as ``"false"`` is refused, not read as True), and the settings are
    checked again whenever they are set afterwards: the ``nonnegative``, ``validate`` and ``compute_dtype``
    attributes, assignments to the ``G``, ``b`` and noise tensors, and every entry of ``load_state_dict`` (checked
    before anything is copied, so a bad file leaves the layer unchanged).

    Notes
    -----
    The posterior always has the prediction's shape. Variances, covariances and ``b`` may broadcast *to* it (e.g.
    one variance vector for a whole batch), but an argument that would broadcast it to a larger shape raises a
    ``ValueError`` naming the argument (a neuralop model's ``(batch, 1, n)`` output needs ``b`` of shape
    ``(batch, 1, m)``).

    Singularity of ``A`` is judged on its symmetric equilibration ``D^-1/2 A D^-1/2`` (``D = diag(A)``), so it does
    not depend on the scale of a row of ``G`` nor on the spread of the variances
    (:func:`probconserv_ext.update.factor_update`). After an exact update (``noise = 0``) the residual
    ``G mu~ - b`` is checked against ``|G| (|mu| + |mu~|) + |b|`` to round-off of the compute dtype; if it is not there
    after a few steps of iterative refinement, a ``ValueError`` is raised rather than a mean that does not conserve.

    ``torch.compile(layer, fullgraph=True)`` works for every input form except ``nonnegative=True`` (its bisection
    has data-dependent loops). While compiling, the checks that need a host synchronisation are skipped: finite /
    non-negative / subnormal / PSD input checks, the singularity test (a singular system then gives non-finite
    values instead of an error) and the round-off check of the result. Shape checks still run. Validate inputs
    with an eager call first when in doubt.

    Fields on 2-D/3-D tensor-product grids are flattened by the user before the call, with
    :func:`probconserv_ext.flatten_field` (row-major, matching :func:`conservation_constraint` on a tuple of axes),
    and restored with :func:`probconserv_ext.unflatten_field`.

    With ``noise = 0`` the posterior covariance is singular (rank ``n - m``). ``rsample`` never factors it: it draws
    from the prior and applies the update to each draw. If ``A`` is singular but the prior mean is consistent with
    the constraint along its null space (e.g. the prior is already the output of an exact update), the
    pseudo-inverse is used and the update is a no-op there; if inconsistent, a ``ValueError`` is raised.

    References
    ----------
    Hansen, Maddix, Alizadeh, Gupta, Mahoney (2023). Learning physical models that can respect conservation
    laws. ICML 2023.

    Examples
    --------
    >>> c = conservation_constraint(torch.linspace(0, 1, 65), total=torch.zeros(100))
    >>> post = ProbConserv(c)(mean, variance=var)      # mean, var: (100, 65)
    >>> post.constraint_residual().abs().max()          # ~1e-16
    """

    #: The posterior class :meth:`forward` returns.
    posterior_class = ConstrainedGaussian

    def __init__(self, constraint: LinearConstraint, noise: float = 0.0, method: str = "probconserv",
                 nonnegative: bool = False, learn_noise: bool = False, compute_dtype: torch.dtype = torch.float64,
                 validate: bool = True):
        super().__init__()
        if not isinstance(constraint, LinearConstraint):
            raise TypeError(f"constraint must be a LinearConstraint, got {type(constraint).__name__}")
        method_obj = resolve_method(method)
        compute_dtype = check_compute_dtype(compute_dtype)
        learn_noise = check_bool(learn_noise, "learn_noise")
        noise_t = self._check_noise(noise, compute_dtype)
        if learn_noise and not float(noise_t) > 0:
            raise ValueError(f"learn_noise=True needs an initial noise > 0 (it is learned as log(noise)), got "
                             f"noise = {float(noise_t)}")
        self._method = method_obj
        # Sums over the node axis and shared draws: identity here, all-reduce/broadcast in DistributedProbConserv.
        self.collectives = LOCAL
        self._n_total = constraint.n  # nodes of the whole field (for the round-off tolerances)
        self._compute_dtype = compute_dtype
        self.validate = validate
        # Known at construction, so that a compiled forward pass needs no host synchronisation to decide whether the
        # update is exact (eager calls re-read the buffer, which load_state_dict may have changed).
        self._noise_is_zero = (not learn_noise) and float(noise_t) == 0.0
        self.register_buffer("G", constraint.G.to(compute_dtype))
        self.register_buffer("b", None if constraint.b is None else constraint.b.to(compute_dtype))
        if learn_noise:
            self.log_noise = nn.Parameter(noise_t.log())
        else:
            self.register_buffer("_noise", noise_t)
        self.nonnegative = nonnegative  # checked against G by its setter

    # ------------------------------------------------------------------ settings, checked on every path that sets them
    @staticmethod
    def _check_noise(noise: Any, dtype: torch.dtype) -> torch.Tensor:
        """The constraint variance as a finite, non-negative scalar tensor in ``dtype`` (``bool`` refused)."""
        if is_bool(noise) or (
                isinstance(noise, torch.Tensor) and noise.dtype == torch.bool):
            raise TypeError(f"noise must be a non-negative real number, got {noise!r} (a boolean)")
        noise_t = as_tensor(noise, "noise", dtype=dtype)
        if noise_t.ndim != 0:
            raise ValueError(f"noise must be a scalar, got shape {tuple(noise_t.shape)}")
        check_nonnegative(noise_t, "noise")
        return noise_t

    @property
    def compute_dtype(self) -> torch.dtype:
        """Dtype of the internal computation, ``torch.float32`` or ``torch.float64``.

        Setting it casts the layer's constraint and noise to the new dtype (as ``layer.to(dtype)`` does); half
        precision is refused on every path (constructor, this setter, ``.half()``/``.to(dtype)``,
        ``load_state_dict(..., assign=True)``).
        """
        return self._compute_dtype

    @compute_dtype.setter
    def compute_dtype(self, value: torch.dtype) -> None:
        self.to(check_compute_dtype(value))

    @property
    def nonnegative(self) -> bool:
        """Whether the mean is kept non-negative (a ``bool``; see the class parameters)."""
        return self._nonnegative

    @nonnegative.setter
    def nonnegative(self, value: bool) -> None:
        value = check_bool(value, "nonnegative")
        if value:
            self._check_nonnegative_supported()
        self._nonnegative = value

    def _check_nonnegative_supported(self) -> None:
        """Raise unless ``nonnegative=True`` can run with this ``G`` (one general row plus single-node rows)."""
        general = int(((self.G != 0).sum(-1) != 1).sum())
        if general > 1:
            raise ValueError(
                "nonnegative=True supports one constraint row plus rows that fix single nodes (value_constraint), "
                f"got {general} general rows"
            )

    @property
    def validate(self) -> bool:
        """Whether inputs are checked (a ``bool``; see the class parameters)."""
        return self._validate

    @validate.setter
    def validate(self, value: bool) -> None:
        self._validate = check_bool(value, "validate")

    def _apply(self, fn, recurse=True):
        # .to(dtype), .half(), .float(), .double() cast the constraint and the noise: the compute dtype follows
        # them, and half precision is refused before anything is cast (the layer stays as it was).
        probe = fn(torch.zeros((), dtype=self._compute_dtype, device=self.G.device))
        if probe.dtype not in COMPUTE_DTYPES:
            check_compute_dtype(probe.dtype)
        out = super()._apply(fn, recurse)
        self._compute_dtype = probe.dtype
        return out

    def __setattr__(self, name: str, value: Any) -> None:
        # The constraint's tensors are buffers (and the learned noise a parameter) that plain assignment would
        # replace unchecked.
        if name in ("G", "b", "_noise") and "_buffers" in self.__dict__ and name in self._buffers:
            value = self._checked_state(name, value, "")
        elif name == "log_noise" and "_parameters" in self.__dict__ and name in self._parameters:
            if not isinstance(value, nn.Parameter):
                raise TypeError(f"log_noise must be a torch.nn.Parameter, got {type(value).__name__}")
            self._checked_state(name, value, "")
        super().__setattr__(name, value)
        if name == "_noise" and "_noise_is_zero" in self.__dict__:
            self._noise_is_zero = not bool(self._noise.detach() > 0)  # the compiled path's flag follows

    def _checked_state(self, name: str, value: Any, prefix: str) -> Any:
        """``value`` for the buffer or parameter ``name``, checked as the constructor checks it (in the compute
        dtype for a buffer); ``prefix`` is the state-dict prefix shown in messages."""
        label = prefix + name
        if name == "b" and value is None:
            return None
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{label} must be a tensor, got {type(value).__name__}")
        if value.is_complex() or not value.is_floating_point():
            raise TypeError(f"{label} must be a real floating tensor, got dtype {value.dtype}")
        if name == "G":
            if tuple(value.shape) != tuple(self.G.shape):
                raise ValueError(f"{label} must have the layer's shape (m, n) = {tuple(self.G.shape)}, got "
                                 f"{tuple(value.shape)}")
            check_finite(value, label)
            self._check_constraint_rows(value, label)
        elif name == "b":
            value = check_rhs(value, self.m, label, finite=True)
        elif name == "_noise":
            if value.ndim != 0:
                raise ValueError(f"{label} must be a scalar, got shape {tuple(value.shape)}")
            check_nonnegative(value, label)
        elif name == "log_noise":
            if value.ndim != 0:
                raise ValueError(f"{label} must be a scalar, got shape {tuple(value.shape)}")
            check_finite(value, label)
        return value if name == "log_noise" else value.to(self._compute_dtype)

    def _check_constraint_rows(self, G: torch.Tensor, label: str) -> None:
        """No zero row (a slab of a distributed layer may have some: the check there is collective)."""
        zero = (G == 0).all(dim=-1)
        if bool(zero.any()):
            raise ValueError(f"{label} must have no zero row, but row(s) {torch.nonzero(zero).flatten().tolist()} "
                             "are zero")

    @property
    def method(self) -> str:
        """The update method's name, ``"probconserv"`` or ``"hardc"``."""
        return self._method.name

    @property
    def noise(self) -> torch.Tensor:
        """Constraint variance ``s2`` (a tensor; differentiable when learned)."""
        return self.log_noise.exp() if hasattr(self, "log_noise") else self._noise

    def _zero_noise(self):
        """Whether ``noise == 0`` (an exact update).

        Eager calls read the buffer's value every time (one scalar), so no edit of the noise (``load_state_dict``,
        an in-place write, a write through ``.data``) can leave a stale answer. A compiled forward pass cannot branch
        on a tensor's value without a graph break, so it uses the flag set at construction and refreshed by
        ``load_state_dict``; after writing the noise buffer by hand, call ``torch.compiler.reset()`` or recompile.
        """
        if hasattr(self, "log_noise"):
            return False
        if compiling():
            return self._noise_is_zero
        return not bool(self._noise.detach() > 0)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Every entry is checked before anything is copied, as the constructor checks it: a bad file leaves the layer
        # unchanged and the error names the entry.
        for name in ("G", "b", "_noise", "log_noise"):
            if prefix + name in state_dict and (name in self._buffers or name in self._parameters):
                self._checked_state(name, state_dict[prefix + name], prefix)
        if self.nonnegative and prefix + "G" in state_dict:
            G = state_dict[prefix + "G"]
            if int(((G != 0).sum(-1) != 1).sum()) > 1:
                raise ValueError(f"{prefix}G must have one general row plus single-node rows for nonnegative=True")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        # load_state_dict(..., assign=True) keeps the file's tensors: bring them back to the compute dtype.
        for name in ("G", "b", "_noise"):
            t = self._buffers.get(name)
            if t is not None and t.dtype != self._compute_dtype:
                self._buffers[name] = t.to(self._compute_dtype)
        p = self._parameters.get("log_noise")
        if p is not None and p.dtype != self._compute_dtype:
            self._parameters["log_noise"] = nn.Parameter(p.detach().to(self._compute_dtype))
        # keep the compiled path's flag in step with the loaded noise
        if not hasattr(self, "log_noise"):
            self._noise_is_zero = not bool(self._noise.detach() > 0)

    def extra_repr(self) -> str:
        """The layer's settings, for ``repr``."""
        return f"m={self.m}, n={self.n}, method={self.method!r}, nonnegative={self.nonnegative}"

    # ------------------------------------------------------------------ input parsing
    def _rhs(self, b):
        if b is None:
            if self.b is None:
                raise ValueError("b is required: the constraint has no right-hand side, so pass b= of shape (..., m)")
            return self.b
        b = check_rhs(b, self.m, "b", device=self.G.device, finite=self.validate and not compiling())
        return b.to(self.compute_dtype)

    def _parse(self, mean, variance, covariance, cov_factor, cov_diag, samples, b):
        """The prior (a StructuredGaussian in the compute dtype) and the right-hand side, both checked."""
        reader = PriorReader(self.n, self.compute_dtype, self.validate, self.G.device)
        prior = reader.read(mean, variance, covariance, cov_factor, cov_diag, samples)
        return prior, self._check_rhs_shape(self._rhs(b), prior.batch_shape)

    # ------------------------------------------------------------------ the update
    def forward(self, mean: Prediction = None, variance: Tensorish = None, *, covariance: Tensorish = None,
                cov_factor: Tensorish = None, cov_diag: Tensorish = None, samples: Tensorish = None,
                b: Tensorish = None) -> ConstrainedGaussian:
        """Apply the update.

        Parameters
        ----------
        mean : torch.Tensor of shape ``(..., n)``, or a distribution
            The predicted mean; or a ``Normal`` (independent nodes along the last dimension),
            ``MultivariateNormal``, ``LowRankMultivariateNormal``, or a :class:`StructuredGaussian` (e.g. the
            output of another ProbConserv layer).
        variance : torch.Tensor, shape ``(..., n)``, optional
            Per-node variances (diagonal covariance).
        covariance : torch.Tensor, shape ``(..., n, n)``, optional
            Dense covariance (symmetric PSD).
        cov_factor, cov_diag : torch.Tensor, shapes ``(..., n, r)`` and ``(..., n)``, optional
            Low-rank plus diagonal covariance ``U U^T + diag(d)``.
        samples : torch.Tensor, shape ``(S, ..., n)``, optional
            Ensemble members: the prior is their mean and sample covariance (low rank, plus ``cov_diag`` if given).
        b : torch.Tensor, shape ``(..., m)``, optional
            Right-hand side, overriding the constraint's.

        Returns
        -------
        ConstrainedGaussian
            Its mean has the prediction's shape.

        Raises
        ------
        ValueError
            Non-finite input, negative or subnormal variances, a non-PSD covariance; a variance, covariance or ``b``
            that would broadcast the prediction to a larger shape (an ``(n, n)`` matrix given as ``variance`` is
            pointed to ``covariance=``); a singular constraint system the prior mean violates; an exact update that
            does not conserve to round-off (a numerically singular system or under/overflowing inputs).
        TypeError
            Non-numeric input or an unsupported distribution.
        """
        prior, b = self._parse(mean, variance, covariance, cov_factor, cov_diag, samples, b)
        return self._update(prior, b)

    def _update(self, prior: StructuredGaussian, b: torch.Tensor) -> ConstrainedGaussian:
        """The update, in three steps: local pieces, ONE sum over the node axis (the seam), shared arithmetic.

        The pieces are ``G mu``, ``|G| |mu|``, ``G S G^T`` and ``diag(S) (G*G)^T`` (``S`` the method's metric), plus
        ``U^T G^T`` for a low-rank part ``U U^T`` of ``S``; ``S G^T`` itself stays per node. ``self.collectives``
        sums the pieces (nothing to do on one process; one all-reduce over the ranks of a split field), then the
        factorisation, the correction and the round-off check are the same for both.
        """
        G, noise = self.G, self.noise
        pinned = None
        if self.nonnegative:
            prior, pinned = self._pin_nonnegative(prior, b, noise)
        metric = self._method.metric(prior.covariance, pinned)
        mu = prior.loc
        rest, U = metric.low_rank_split()
        SG = rest.matmul(G.mT)
        pieces = [mu @ G.mT, mu.abs() @ G.abs().mT, (SG.mT @ G.mT).mT, metric.diagonal_dot(G * G)]
        if U is not None:
            pieces.append(U.mT @ G.mT)  # (..., r, m): summed over the nodes, then C^T C joins G S G^T
        sums = self.collectives.sum_pieces(pieces, (1, 1, 2, 1, 2), prior.batch_shape)
        Gmu, scale, GSG, reference = sums[:4]
        if U is not None:
            C = sums[4]
            GSG = GSG + C.mT @ C
            SG = SG + U @ C
        residual = Gmu - b
        factors = factor_update(GSG, SG, residual, noise, reference + noise, scale + b.abs(), n_nodes=self._n_total)
        loc = mu - factors.correction(residual)
        zero_noise = self._zero_noise()
        refine_tol = None
        # The round-off check reads G loc, a sum over the nodes: on a split field it would cost another collective
        # per call, so only a whole field is checked and refined.
        if zero_noise and not compiling() and self.collectives.local:
            loc = self._check_conservation(loc, factors, b, scale + b.abs())
            refine_tol = residual_tolerance(self.compute_dtype, self.n)
        return self.posterior_class(prior, G, b, noise, loc, factors if self._method.updates_covariance else None,
                                    self.method, prior.out_dtype, noise_is_zero=zero_noise, refine_tol=refine_tol,
                                    collectives=self.collectives)

    def _check_rhs_shape(self, b, batch_shape):
        hint = ""
        if len(batch_shape) >= 1 and batch_shape[-1] == 1 and b.shape[:-1] == batch_shape[:-1]:
            hint = (f" (a prediction of shape (..., 1, n), e.g. a neuralop model's (batch, channel, n) output, needs "
                    f"b of shape {(*batch_shape, self.m)}: add the channel axis to the total)")
        check_broadcasts_to(b.shape[:-1], batch_shape, "b", f"the prediction's leading shape {tuple(batch_shape)}",
                            hint, full_shape=b.shape)
        return b

    def _check_conservation(self, loc, factors, b, prior_scale):
        """Check ``G loc = b`` to round-off after an exact update, refining if needed; raise if it fails.

        The residual is judged per row against the problem's scale ``|G| (|mu| + |loc|) + |b|`` (``mu`` the prior
        mean: forming ``loc = mu - correction`` rounds relative to both) times
        :func:`probconserv_ext.update.residual_tolerance`. An ill-conditioned but non-singular system leaves a
        relative residual of about ``cond eps`` after the first solve; each step of iterative refinement (the same
        update applied to the residual) multiplies it by about ``cond eps`` again, so up to ``REFINE_STEPS`` steps
        reach round-off whenever ``cond eps`` is well below one. Skipped while compiling.

        ``prior_scale`` is ``|G| |mu| + |b|``, computed before the update.
        """
        tol = residual_tolerance(self.compute_dtype, self.n)
        loc, failed = refine_to_roundoff(loc, self.G, b, factors.correction, tol, prior_scale)
        if failed is None:
            return loc
        r, scale = failed
        worst = float((r.abs() / scale.clamp_min(torch.finfo(scale.dtype).tiny)).detach().amax())
        raise ValueError(
            "the exact update did not enforce G u = b to round-off: the largest relative residual "
            f"|G u - b| / (|G| (|mu| + |u|) + |b|) is {worst:.1e}, above the tolerance {tol:.1e} of "
            f"{self.compute_dtype} "
            "(the constraint system is numerically singular or the inputs under- or overflow); use noise > 0, "
            "remove (nearly) dependent rows of G, rescale the inputs, or compute in float64"
        )

    def _pin_nonnegative(self, prior: StructuredGaussian, b: torch.Tensor,
                         noise: torch.Tensor) -> Tuple[StructuredGaussian, Optional[torch.Tensor]]:
        d = self._method.variances(prior.covariance, prior.loc)
        mu, G = prior.loc, self.G
        point = (G != 0).sum(-1) == 1
        general = torch.nonzero(~point).flatten()
        if general.numel() == 0:
            raise ValueError("nonnegative=True needs a conservation row; the constraint only fixes single nodes")
        if bool(point.any()):
            # Rows fixing single nodes (known values): pin those nodes at their values with zero variance, so
            # that the 1-D multiplier equation of the remaining row sees them as constants.
            rows = torch.nonzero(point).flatten()
            idx = (G[rows] != 0).to(torch.int8).argmax(-1)
            values = b[..., rows] / G[rows, idx]
            if not bool((values >= 0).all()):
                raise ValueError("nonnegative=True is infeasible: a known node value in b is negative")
            mu = mu.expand(torch.broadcast_shapes(mu.shape, (*values.shape[:-1], mu.shape[-1]))).clone()
            d = d.expand(mu.shape).clone()
            mu[..., idx] = values.expand(*mu.shape[:-1], idx.numel()).to(mu.dtype)
            d[..., idx] = 0.0
        k = int(general[0])
        mu_p, d_p = nonnegative_active_set(mu, d, G[k], b[..., k], noise)
        pinned = StructuredGaussian(mu_p, self._method.pinned_covariance(prior.covariance, d_p), prior.out_dtype)
        return pinned, d_p

    def constrain_samples(self, samples: torch.Tensor, b: Tensorish = None, cov_diag: Tensorish = None,
                          generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, ConstrainedGaussian]:
        """Push ensemble members through the update defined by the ensemble itself.

        Parameters
        ----------
        samples : torch.Tensor, shape ``(S, ..., n)``
        b : torch.Tensor, optional
        cov_diag : torch.Tensor, optional
            Extra diagonal variance added to the ensemble covariance.
        generator : torch.Generator, optional

        Returns
        -------
        (members, posterior) : tuple
            The updated members (shape of ``samples``; with ``noise = 0`` each satisfies ``G u = b`` and their
            empirical mean and covariance are exactly the posterior's) and the :class:`ConstrainedGaussian`.
        """
        post = self(samples=samples, cov_diag=cov_diag, b=b)
        return post.update_samples(samples, generator=generator), post
