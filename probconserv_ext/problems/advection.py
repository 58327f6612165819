"""Linear advection of a step: the hyperbolic conservation law with a moving discontinuity."""

from typing import Tuple

import numpy as np

from .base import ConservationProblem

__all__ = ["AdvectionProblem"]


class AdvectionProblem(ConservationProblem):
    """``u_t + beta u_x = 0`` on ``[0, 1]`` with ``u(x, 0) = 0`` and in-flow value ``u(0, t) = 1``.

    Exact solution: ``u = 1`` for ``x < beta t`` and 0 beyond (value 1/2 on the discontinuity). The flux
    ``beta u`` brings in ``beta`` per unit time and nothing leaves while the step is inside, so the total
    is ``beta t``. The parameter range is this package's choice (chosen so the step stays inside the
    domain up to ``t_final``; later times raise ValueError), not the paper's.

    References
    ----------
    .. [1] LeVeque, R. J. "Finite volume methods for hyperbolic problems", Cambridge University Press, 2002.
    """

    name = "advection"
    param_name, param_meaning = "beta", "speed"
    train_range, test_params = (0.5, 1.5), (1.0,)
    has_shock, front_name = True, "step beta*t"

    def _front(self, t: np.ndarray, param: float) -> np.ndarray:
        return param * t

    def _solution(self, x: np.ndarray, t: np.ndarray, param: float) -> np.ndarray:
        s = param * t
        return np.where(x < s, 1.0, np.where(x == s, 0.5, 0.0))

    def _total(self, t: np.ndarray, param: float) -> np.ndarray:
        return param * t

    def _boundary_values(self, t: np.ndarray, param: float) -> Tuple[np.ndarray, np.ndarray]:
        # Same convention as the solution: 1/2 on the discontinuity, which sits on the right end at beta t = 1.
        return np.where(t > 0, 1.0, 0.5), np.where(param * t == self.domain[1], 0.5, 0.0)

    def shock_threshold(self, param: float) -> float:
        """Half the jump height, 1/2 (``param`` is checked; see :meth:`ConservationProblem.shock_threshold`)."""
        self.check_param(param)
        return 0.5
