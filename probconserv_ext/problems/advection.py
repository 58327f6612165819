"""Linear advection of a step: the hyperbolic conservation law with a moving discontinuity."""

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
    param_name = "beta"
    domain = (0.0, 1.0)
    train_range = (0.5, 1.5)
    test_params = (1.0,)
    t_final = 0.5
    has_shock = True

    def _check_param(self, param):
        if param <= 0:
            raise ValueError(f"param (speed beta) must be positive, got {param}")

    def _check_horizon(self, t, param):
        if param * np.max(t) > self.domain[1]:
            raise ValueError(f"t must keep the step beta*t inside [0, 1]: t <= {1 / param:.6g}, got {np.max(t):.6g}")

    def _solution(self, x, t, param):
        s = param * t
        return np.where(x < s, 1.0, np.where(x == s, 0.5, 0.0))

    def _total(self, t, param):
        return param * t

    def boundary_values(self, t, param):
        t = self._check_times(t)
        self.check_param(param)
        # Same convention as the solution: 1/2 on the discontinuity, which sits on the right end at beta t = 1.
        return np.where(t > 0, 1.0, 0.5), np.where(param * t == self.domain[1], 0.5, 0.0)

    def shock_position(self, t, param):
        t, param = self._check_times(t), self.check_param(param)
        self._check_horizon(t, param)
        return param * t

    def shock_threshold(self, param):
        """Half the jump height."""
        self.check_param(param)
        return 0.5
