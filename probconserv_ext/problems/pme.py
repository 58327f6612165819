"""Porous-medium equation ``u_t = (u^m u_x)_x``: degenerate diffusion with a sharp but continuous front."""

from typing import Tuple

import numpy as np

from .base import ConservationProblem

__all__ = ["PorousMediumProblem"]


class PorousMediumProblem(ConservationProblem):
    """``u_t = (u^m u_x)_x`` on ``[0, 1]`` with ``u(x, 0) = 0`` and ``u(0, t) = (m t)^(1/m)``.

    Exact travelling-wave solution ``u = (m max(t - x, 0))^(1/m)``: the front ``x = t`` moves at unit speed and
    the solution gets steeper at the front as m grows. The total is the time integral of the in-flux at
    ``x = 0``: ``m^(1 + 1/m) t^(1 + 1/m) / (m + 1)`` (valid while the front is inside, t <= 1).

    References
    ----------
    .. [1] Hansen, D., Maddix, D. C., Alizadeh, S., Gupta, G., Mahoney, M. W. "Learning physical models
       that can respect conservation laws", ICML 2023.
    .. [2] Maddix, D. C., Sampaio, L., Gerritsen, M. "Numerical artifacts in the generalized porous medium
       equation: why harmonic averaging itself is not to blame", J. Comput. Phys. 361, 2018.
    """

    name = "pme"
    param_name, param_meaning = "m", "exponent"
    train_range, test_params = (1.0, 6.0), (1.0, 3.0, 6.0)
    front_name = "front x = t"

    def _front(self, t: np.ndarray, param: float) -> np.ndarray:
        return t

    def _solution(self, x: np.ndarray, t: np.ndarray, param: float) -> np.ndarray:
        return (param * np.maximum(t - x, 0.0)) ** (1.0 / param)

    def _total(self, t: np.ndarray, param: float) -> np.ndarray:
        return param ** (1.0 + 1.0 / param) * t ** (1.0 + 1.0 / param) / (param + 1.0)

    def _boundary_values(self, t: np.ndarray, param: float) -> Tuple[np.ndarray, np.ndarray]:
        return (param * t) ** (1.0 / param), np.zeros_like(t)
