"""Stefan problem: the GPME with a step diffusivity, whose solution has a moving shock."""

from typing import Tuple

import numpy as np
from scipy.optimize import brentq
from scipy.special import erf

from _physics_constrained.validation import check_real
from .base import ConservationProblem

__all__ = ["StefanProblem", "stefan_constants"]


def stefan_constants(p_star: float) -> Tuple[float, float, float]:
    """Similarity constants of the Stefan solution.

    Solves ``p* erf(z1) z1 exp(z1^2) = (1 - p*) / sqrt(pi)`` for ``z1`` (the left side increases from 0
    to infinity on z1 > 0, so the root is unique and bracketed).

    Parameters
    ----------
    p_star : float
        Phase-change level, ``0 < p* < 1``.

    Returns
    -------
    z1 : float
    alpha : float
        Shock speed constant ``2 z1``; the shock is at ``alpha sqrt(t)``.
    c1 : float
        ``(1 - p*) / erf(alpha / 2)``.

    Raises
    ------
    TypeError
        If ``p_star`` is not a real number.
    ValueError
        If it is not finite or not strictly between 0 and 1.
    """
    p = check_real(p_star, "p_star")
    if not 0.0 < p < 1.0:
        raise ValueError(f"p_star must be strictly between 0 and 1, got {p}")
    rhs = (1.0 - p) / np.sqrt(np.pi)

    def residual(z: float) -> float:
        return p * erf(z) * z * np.exp(z * z) - rhs

    hi = 1.0
    while residual(hi) < 0:
        hi *= 2.0
    z1 = brentq(residual, 0.0, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=200)
    alpha = 2.0 * z1
    return z1, alpha, (1.0 - p) / erf(z1)


class StefanProblem(ConservationProblem):
    """``u_t = (k(u) u_x)_x`` with ``k = 1`` where ``u >= p*`` and 0 otherwise, on ``[0, 1]``.

    With ``u(x, 0) = 0`` and ``u(0, t) = 1`` the solution is ``1 - c1 erf(x / (2 sqrt t))`` left of the
    shock ``x* = alpha sqrt(t)`` and 0 right of it; it jumps from p* to 0 there. The total equals the
    time integral of the in-flux ``c1 / sqrt(pi t)``: ``2 c1 sqrt(t / pi)``.

    The paper trains on ``p* in [0.55, 0.7]`` and tests at 0.6 and, out of range, at 0.5.

    References
    ----------
    .. [1] Hansen, D., Maddix, D. C., Alizadeh, S., Gupta, G., Mahoney, M. W. "Learning physical models
       that can respect conservation laws", ICML 2023.
    .. [2] Maddix, D. C., Sampaio, L., Gerritsen, M. "Numerical artifacts in the discontinuous generalized
       porous medium equation: how to avoid spurious temporal oscillations", J. Comput. Phys. 368, 2018.
    """

    name = "stefan"
    param_name, param_meaning, param_bounds = "p*", "phase-change level", (0.0, 1.0)
    train_range, test_params = (0.55, 0.7), (0.6, 0.5)
    has_shock, front_name = True, "shock alpha*sqrt(t)"

    def _front(self, t: np.ndarray, param: float) -> np.ndarray:
        return stefan_constants(param)[1] * np.sqrt(t)

    def _solution(self, x: np.ndarray, t: np.ndarray, param: float) -> np.ndarray:
        _, alpha, c1 = stefan_constants(param)
        safe_t = np.where(t > 0, t, 1.0)
        liquid = 1.0 - c1 * erf(x / (2.0 * np.sqrt(safe_t)))
        inside = (x <= alpha * np.sqrt(t)) & (t > 0)
        u = np.where(inside, liquid, 0.0)
        # at t = 0 only the boundary node carries the Dirichlet value
        return np.where((t == 0) & (x == 0), 1.0, u)

    def _total(self, t: np.ndarray, param: float) -> np.ndarray:
        _, _, c1 = stefan_constants(param)
        return 2.0 * c1 * np.sqrt(t / np.pi)

    def _boundary_values(self, t: np.ndarray, param: float) -> Tuple[np.ndarray, np.ndarray]:
        return np.ones_like(t), np.zeros_like(t)

    def shock_threshold(self, param: float) -> float:
        """Half the jump height, p*/2: far from both states and from the noise around 0 ahead.

        ``param`` is checked; see :meth:`ConservationProblem.shock_threshold`.
        """
        return 0.5 * self.check_param(param)
