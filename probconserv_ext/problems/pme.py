"""Porous-medium equation ``u_t = (u^m u_x)_x``: degenerate diffusion with a sharp but continuous front."""

import numpy as np

from .base import ConservationProblem

__all__ = ["PorousMediumProblem"]


class PorousMediumProblem(ConservationProblem):
    """``u_t = (u^m u_x)_x`` on ``[0, 1]`` with ``u(x, 0) = 0`` and ``u(0, t) = (m t)^(1/m)``.

    Exact travelling-wave solution ``u = (m max(t - x, 0))^(1/m)``: the front moves at unit speed and the
    solution gets steeper at the front as m grows. The total is the time integral of the in-flux at
    ``x = 0``: ``m^(1 + 1/m) t^(1 + 1/m) / (m + 1)`` (valid while the front is inside, t <= 1).

    References
    ----------
    .. [1] Hansen, D., Maddix, D. C., Alizadeh, S., Gupta, G., Mahoney, M. W. "Learning physical models
       that can respect conservation laws", ICML 2023.
    .. [2] Maddix, D. C., Sampaio, L., Gerritsen, M. "Numerical artifacts in the generalized porous medium
       equation: why harmonic averaging itself is not to blame", J. Comput. Phys. 361, 2018.
    """

    name = "pme"
    param_name = "m"
    domain = (0.0, 1.0)
    train_range = (1.0, 6.0)
    test_params = (1.0, 3.0, 6.0)
    t_final = 0.5
    has_shock = False

    def _check_param(self, param):
        if param <= 0:
            raise ValueError(f"param (exponent m) must be positive, got {param}")

    def _check_horizon(self, t, param):
        if np.max(t) > self.domain[1]:
            raise ValueError(f"t must be <= 1 (afterwards the front leaves [0, 1]), got {np.max(t):.6g}")

    def _solution(self, x, t, param):
        return (param * np.maximum(t - x, 0.0)) ** (1.0 / param)

    def _total(self, t, param):
        return param ** (1.0 + 1.0 / param) * t ** (1.0 + 1.0 / param) / (param + 1.0)

    def boundary_values(self, t, param):
        t, m = self._check_times(t), self.check_param(param)
        self._check_horizon(t, m)
        return (m * t) ** (1.0 / m), np.zeros_like(t)

    def front_position(self, t, param):
        """Position ``x = t`` of the degenerate front (u > 0 behind it, u = 0 ahead)."""
        t, param = self._check_times(t), self.check_param(param)
        self._check_horizon(t, param)
        return t.copy()
