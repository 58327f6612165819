"""Constant-coefficient diffusion (heat) equation, the "easy" member of the GPME family."""

from typing import Tuple

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
    param_name, param_meaning = "k", "diffusivity"
    domain = (0.0, 2.0 * np.pi)
    train_range, test_params = (1.0, 5.0), (1.0,)

    def _solution(self, x: np.ndarray, t: np.ndarray, param: float) -> np.ndarray:
        return np.exp(-param * t) * np.sin(x)

    def _total(self, t: np.ndarray, param: float) -> np.ndarray:
        return np.zeros_like(t)

    def _boundary_values(self, t: np.ndarray, param: float) -> Tuple[np.ndarray, np.ndarray]:
        return np.zeros_like(t), np.zeros_like(t)
