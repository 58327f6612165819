"""Common interface of the conservation-law test problems with exact solutions."""

from dataclasses import dataclass
from typing import Tuple

import numpy as np

__all__ = ["ConservationProblem", "ProblemData", "trapezoid_weights"]


def trapezoid_weights(grid):
    """Trapezoid quadrature weights of a 1-D grid.

    Parameters
    ----------
    grid : array_like, shape (n,)
        Strictly increasing, finite node coordinates, n >= 2.

    Returns
    -------
    numpy.ndarray, shape (n,)
        Weights w with ``w @ u`` the trapezoid integral of ``u`` over ``[grid[0], grid[-1]]``.
    """
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size < 2:
        raise ValueError(f"grid must be a 1-D array with at least 2 nodes, got shape {grid.shape}")
    if not np.all(np.isfinite(grid)):
        raise ValueError("grid must be finite (no NaN or inf)")
    dx = np.diff(grid)
    if np.any(dx <= 0):
        raise ValueError("grid must be strictly increasing")
    w = np.zeros_like(grid)
    w[:-1] += dx / 2
    w[1:] += dx / 2
    return w


@dataclass
class ProblemData:
    """Inputs, exact solutions and conserved totals of one problem on one space-time grid.

    Attributes
    ----------
    params : numpy.ndarray, shape (n_samples,)
        PDE parameter of each sample.
    inputs : numpy.ndarray, shape (n_samples, 2, nx)
        Model inputs: the normalised PDE parameter as a constant field, and the grid mapped to [0, 1].
    solution : numpy.ndarray, shape (n_samples, nt, nx)
        Exact solution at ``times`` (rows) and ``grid`` (columns).
    totals : numpy.ndarray, shape (n_samples, nt)
        Closed-form conserved total (integral of u over the domain) at each time.
    grid : numpy.ndarray, shape (nx,)
    times : numpy.ndarray, shape (nt,)
    """

    params: np.ndarray
    inputs: np.ndarray
    solution: np.ndarray
    totals: np.ndarray
    grid: np.ndarray
    times: np.ndarray


class ConservationProblem:
    """A 1-D conservation law ``u_t + F(u)_x = 0`` with a closed-form solution, total and shock.

    Subclasses define the class attributes below and implement :meth:`solution`, :meth:`total` and
    :meth:`boundary_values`; problems with a moving discontinuity also implement :meth:`shock_position`.

    Attributes
    ----------
    name : str
    param_name : str
        Symbol of the scalar PDE parameter (k, m, p*, beta).
    domain : tuple of float
        Spatial interval ``(x_min, x_max)``.
    train_range : tuple of float
        Interval the training parameters are drawn from (uniformly).
    test_params : tuple of float
        Fixed test parameters (some may lie outside ``train_range`` on purpose).
    t_final : float
        Final time; the metrics are evaluated there.
    has_shock : bool
        Whether the solution has a moving discontinuity whose position is a downstream quantity.
    """

    name: str = ""
    param_name: str = ""
    domain: Tuple[float, float] = (0.0, 1.0)
    train_range: Tuple[float, float] = (0.0, 1.0)
    test_params: Tuple[float, ...] = ()
    t_final: float = 0.5
    has_shock: bool = False

    # ---- to implement --------------------------------------------------------------------
    def _check_param(self, param):
        """Raise ValueError when ``param`` is outside the problem's admissible set."""
        raise NotImplementedError

    def _check_horizon(self, t, param):
        """Raise ValueError when the closed forms stop holding at times ``t`` (e.g. a front has left)."""

    def _solution(self, x, t, param):
        raise NotImplementedError

    def _total(self, t, param):
        raise NotImplementedError

    def boundary_values(self, t, param):
        """Values of u at ``x_min`` and ``x_max`` prescribed by the boundary conditions.

        Parameters
        ----------
        t : array_like, shape (nt,)
        param : float

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            Left and right boundary values, each of shape (nt,).
        """
        raise NotImplementedError

    def shock_position(self, t, param):
        """Position of the discontinuity at times ``t`` (only for ``has_shock`` problems)."""
        raise NotImplementedError(f"problem {self.name!r} has no shock")

    def shock_threshold(self, param):
        """Level that separates the two states of the shock (used to locate it in samples)."""
        raise NotImplementedError(f"problem {self.name!r} has no shock")

    # ---- shared checked API --------------------------------------------------------------
    def check_param(self, param):
        """Return ``param`` as a float after checking it is a finite admissible value."""
        if isinstance(param, (bool, np.bool_)) or not np.isscalar(param):
            raise TypeError(f"param must be a real scalar, got {type(param).__name__}")
        param = float(param)
        if not np.isfinite(param):
            raise ValueError(f"param ({self.param_name}) must be finite, got {param}")
        self._check_param(param)
        return param

    @staticmethod
    def _check_times(t):
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        if t.ndim != 1:
            raise ValueError(f"t must be a scalar or a 1-D array, got shape {t.shape}")
        if not np.all(np.isfinite(t)) or np.any(t < 0):
            raise ValueError("t must be finite and non-negative")
        return t

    def _check_x(self, x):
        x = np.atleast_1d(np.asarray(x, dtype=np.float64))
        if x.ndim != 1:
            raise ValueError(f"x must be a scalar or a 1-D array, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("x must be finite (no NaN or inf)")
        lo, hi = self.domain
        if np.any(x < lo) or np.any(x > hi):
            raise ValueError(f"x must lie in the domain [{lo}, {hi}]")
        return x

    def solution(self, x, t, param):
        """Exact solution u(x, t).

        Parameters
        ----------
        x : array_like, shape (nx,)
            Points in the domain.
        t : array_like, shape (nt,)
            Non-negative times.
        param : float
            PDE parameter.

        Returns
        -------
        numpy.ndarray, shape (nt, nx)
        """
        t, param = self._check_times(t), self.check_param(param)
        self._check_horizon(t, param)
        return self._solution(self._check_x(x)[None, :], t[:, None], param)

    def total(self, t, param):
        """Closed-form conserved total: initial total plus the time integral of the boundary in-flux.

        Parameters
        ----------
        t : array_like, shape (nt,)
        param : float

        Returns
        -------
        numpy.ndarray, shape (nt,)
        """
        t, param = self._check_times(t), self.check_param(param)
        self._check_horizon(t, param)
        return self._total(t, param)

    def grid(self, nx):
        """Uniform grid with both end points.

        Parameters
        ----------
        nx : int
            Number of nodes, at least 3.
        """
        if isinstance(nx, bool) or not isinstance(nx, (int, np.integer)) or nx < 3:
            raise ValueError(f"nx must be an integer >= 3, got {nx!r}")
        return np.linspace(self.domain[0], self.domain[1], int(nx))

    def times(self, nt):
        """``nt`` equally spaced times in ``(0, t_final]`` (the last one is ``t_final``)."""
        if isinstance(nt, bool) or not isinstance(nt, (int, np.integer)) or nt < 1:
            raise ValueError(f"nt must be an integer >= 1, got {nt!r}")
        return self.t_final * np.arange(1, int(nt) + 1) / int(nt)

    def sample_params(self, n, seed):
        """``n`` training parameters drawn uniformly from ``train_range`` with a seeded generator."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        rng = np.random.default_rng(seed)
        lo, hi = self.train_range
        return np.sort(rng.uniform(lo, hi, size=int(n)))

    def normalise_param(self, params):
        """Map parameters affinely so that ``train_range`` becomes [0, 1] (tests may fall outside)."""
        lo, hi = self.train_range
        return (np.asarray(params, dtype=np.float64) - lo) / (hi - lo)

    def make_data(self, params, nx, nt):
        """Exact solutions, totals and model inputs for a list of parameters.

        Parameters
        ----------
        params : array_like, shape (n_samples,)
        nx : int
            Number of grid nodes (end points included).
        nt : int
            Number of time slices in ``(0, t_final]``.

        Returns
        -------
        ProblemData
        """
        params = np.atleast_1d(np.asarray(params, dtype=np.float64))
        if params.ndim != 1 or params.size == 0:
            raise ValueError(f"params must be a non-empty 1-D array, got shape {params.shape}")
        params = np.array([self.check_param(p) for p in params])
        grid, times = self.grid(nx), self.times(nt)
        sol = np.stack([self.solution(grid, times, p) for p in params])
        tot = np.stack([self.total(times, p) for p in params])
        xin = (grid - grid[0]) / (grid[-1] - grid[0])
        inputs = np.stack(
            [np.stack([np.full_like(grid, pn), xin]) for pn in self.normalise_param(params)]
        )
        return ProblemData(params, inputs, sol, tot, grid, times)

    def __repr__(self):
        return f"{type(self).__name__}(train {self.param_name} in {self.train_range}, test {self.test_params})"

