"""Constant-coefficient diffusion (heat) equation, the "easy" member of the GPME family."""

import numpy as np

from .base import ConservationProblem

__all__ = ["DiffusionProblem"]


class DiffusionProblem(ConservationProblem):
    """``u_t = k u_xx`` on ``[0, 2 pi]`` with ``u(x, 0) = sin x`` and zero boundary values.

    Exact solution ``u = exp(-k t) sin x``. The boundary fluxes ``-k u_x`` at both ends are equal, so no
    net flux enters the domain and the conserved total is zero at all times.

    References
    ----------
    .. [1] Hansen, D., Maddix, D. C., Alizadeh, S., Gupta, G., Mahoney, M. W. "Learning physical models
       that can respect conservation laws", ICML 2023.
    """

    name = "diffusion"
    param_name = "k"
    domain = (0.0, 2.0 * np.pi)
    train_range = (1.0, 5.0)
    test_params = (1.0,)
    t_final = 0.5
    has_shock = False

    def _check_param(self, param):
        if param <= 0:
            raise ValueError(f"param (diffusivity k) must be positive, got {param}")

    def _solution(self, x, t, param):
        return np.exp(-param * t) * np.sin(x)

    def _total(self, t, param):
        return np.zeros_like(t)

    def boundary_values(self, t, param):
        t = self._check_times(t)
        self.check_param(param)
        return np.zeros_like(t), np.zeros_like(t)
