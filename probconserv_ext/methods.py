"""The update methods: ProbConserv (the Bayesian update) and the HardC baseline (a least-squares projection).

Both apply the same arithmetic, ``mu~ = mu - S G^T (s2 I + G S G^T)^-1 (G mu - b)``; they differ only in the
metric ``S`` and in what happens to the covariance:

* ProbConserv: ``S = Sigma``, the prediction's covariance, which is updated (``Sigma - Sigma G^T A^-1 G Sigma``);
* HardC: ``S = I`` (the Euclidean projection onto ``{G u = b}`` for ``s2 = 0``), the covariance is left unchanged.

A method is an object of this module, resolved once from its name by :func:`resolve_method`, so that the layer never
compares strings.

References
----------
Hansen, Maddix, Alizadeh, Gupta, Mahoney (2023). Learning physical models that can respect conservation laws.
ICML 2023 (the update, Section 3, and the HardC baseline).
"""

import abc
from typing import Optional, Union

import torch

from _physics_constrained.validation import check_choice
from .covariance import Covariance, DiagonalCovariance, IdentityCovariance

__all__ = ["UpdateMethod", "ProbConservMethod", "HardCMethod", "METHOD_NAMES", "resolve_method"]


class UpdateMethod(abc.ABC):
    """How an update uses and changes the prediction's covariance."""

    #: The public name (``ProbConserv(method=...)``).
    name: str
    #: Whether the posterior covariance is the updated one (else the prior's).
    updates_covariance: bool

    @abc.abstractmethod
    def metric(self, covariance: Covariance, pinned: Optional[torch.Tensor] = None) -> Covariance:
        """The matrix ``S`` of the update (``S G^T``, ``G S G^T`` and ``diag(S)`` enter the arithmetic).

        Parameters
        ----------
        covariance : Covariance
            The prediction's covariance (after pinning, for ``nonnegative=True``).
        pinned : torch.Tensor, shape ``(..., n)``, optional
            Variances with the pinned nodes set to zero (``nonnegative=True``), else ``None``.

        Returns
        -------
        Covariance
        """

    @abc.abstractmethod
    def variances(self, covariance: Covariance, loc: torch.Tensor) -> torch.Tensor:
        """The per-node weights ``diag(S)`` of the non-negative active-set search.

        Parameters
        ----------
        covariance : Covariance
            The prediction's covariance.
        loc : torch.Tensor, shape ``(..., n)``
            The prediction's mean (for the shape of unit weights).

        Returns
        -------
        torch.Tensor
            Shape ``(..., n)``.

        Raises
        ------
        ValueError
            If the method needs a diagonal covariance and does not get one.
        """

    @abc.abstractmethod
    def pinned_covariance(self, covariance: Covariance, pinned: torch.Tensor) -> Covariance:
        """The prior covariance after the active nodes are pinned (variances ``pinned``).

        Parameters
        ----------
        covariance : Covariance
            Before pinning.
        pinned : torch.Tensor, shape ``(..., n)``
            The variances with the active nodes at zero.

        Returns
        -------
        Covariance
            What the posterior is built on.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ProbConservMethod(UpdateMethod):
    """The Bayesian update: ``S = Sigma``, and the covariance is updated."""

    name = "probconserv"
    updates_covariance = True

    def metric(self, covariance: Covariance, pinned: Optional[torch.Tensor] = None) -> Covariance:
        return covariance

    def variances(self, covariance: Covariance, loc: torch.Tensor) -> torch.Tensor:
        if not covariance.is_diagonal:
            raise ValueError(
                "nonnegative=True needs a diagonal covariance (variance= or Normal), got "
                f"{type(covariance).__name__}"
            )
        return covariance.diagonal()

    def pinned_covariance(self, covariance: Covariance, pinned: torch.Tensor) -> Covariance:
        return DiagonalCovariance(pinned)


class HardCMethod(UpdateMethod):
    """The HardC baseline: ``S = I`` (identity on the free nodes when pinned); the covariance is kept."""

    name = "hardc"
    updates_covariance = False

    def metric(self, covariance: Covariance, pinned: Optional[torch.Tensor] = None) -> Covariance:
        if pinned is None:
            return IdentityCovariance(covariance.n, covariance.dtype, covariance.device)
        return DiagonalCovariance(pinned)

    def variances(self, covariance: Covariance, loc: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(loc)

    def pinned_covariance(self, covariance: Covariance, pinned: torch.Tensor) -> Covariance:
        return covariance


_METHODS = {m.name: m for m in (ProbConservMethod(), HardCMethod())}
#: The accepted method names, in a fixed order (their index identifies a method across ranks).
METHOD_NAMES = tuple(_METHODS)


def resolve_method(method: Union[str, UpdateMethod]) -> UpdateMethod:
    """The method object for a name (or a method object itself).

    Parameters
    ----------
    method : str or UpdateMethod
        ``"probconserv"`` or ``"hardc"``.

    Returns
    -------
    UpdateMethod

    Raises
    ------
    ValueError
        If the name is unknown.
    """
    if isinstance(method, UpdateMethod):
        return method
    return _METHODS[check_choice(method, "method", METHOD_NAMES)]
