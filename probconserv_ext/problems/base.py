"""Common interface of the conservation-law test problems with exact solutions."""

import math
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import numpy as np
import torch
from numpy.typing import ArrayLike

from _physics_constrained.validation import check_int, check_real, is_bool
from ..quadrature import quadrature_weights

__all__ = ["ConservationProblem", "ProblemData", "trapezoid_weights"]


def _real_array(value: Any, name: str) -> np.ndarray:
    """``value`` as a float64 array of at least one dimension, without coercing strings or booleans.

    ``numpy.asarray(..., dtype=float64)`` would turn ``"0.5"`` into 0.5 and ``True`` into 1.0, so the kind of the
    array is checked before the cast.
    """
    try:
        arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a real number or an array of real numbers, got {type(value).__name__}") \
            from err
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real number or an array of real numbers, got {value!r} "
                        f"(dtype {arr.dtype})")
    return np.atleast_1d(arr.astype(np.float64))


def trapezoid_weights(grid: ArrayLike) -> np.ndarray:
    """Trapezoid quadrature weights of a 1-D grid as a NumPy array: ``quadrature_weights(grid)`` in float64.

    Kept for the problems' NumPy callers; :func:`probconserv_ext.quadrature_weights` is the one implementation.

    Parameters
    ----------
    grid : array_like, shape (n,)
        Strictly increasing, finite node coordinates, n >= 2.

    Returns
    -------
    numpy.ndarray, shape (n,)
        Weights w with ``w @ u`` the trapezoid integral of ``u`` over ``[grid[0], grid[-1]]``.

    Raises
    ------
    TypeError, ValueError
        As :func:`probconserv_ext.quadrature_weights` (a grid that is not 1-D, has fewer than 2 nodes, is not
        finite or not strictly increasing).
    """
    return quadrature_weights(torch.as_tensor(np.asarray(grid, dtype=np.float64))).numpy()


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

    Subclasses set the class attributes below and implement ``_solution``, ``_total`` and ``_boundary_values``
    (on checked arrays); a problem whose closed forms hold only while a front is inside the domain implements
    ``_front``, and a problem with a moving discontinuity (``has_shock``) also :meth:`shock_threshold`. The public
    methods check their arguments once, here.

    Attributes
    ----------
    name : str
    param_name : str
        Symbol of the scalar PDE parameter (k, m, p*, beta).
    param_meaning : str
        What the parameter is (for messages), e.g. ``"diffusivity"``.
    param_bounds : tuple of float
        Open interval ``(low, high)`` of admissible parameters.
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
    front_name : str
        The front ``_front`` follows, for messages (e.g. ``"shock alpha*sqrt(t)"``).
    """

    name: str = ""
    param_name: str = ""
    param_meaning: str = ""
    param_bounds: Tuple[float, float] = (0.0, math.inf)
    domain: Tuple[float, float] = (0.0, 1.0)
    train_range: Tuple[float, float] = (0.0, 1.0)
    test_params: Tuple[float, ...] = ()
    t_final: float = 0.5
    has_shock: bool = False
    front_name: str = ""

    # ---- to implement (on checked arguments) ------------------------------------------------
    def _solution(self, x: np.ndarray, t: np.ndarray, param: float) -> np.ndarray:
        raise NotImplementedError

    def _total(self, t: np.ndarray, param: float) -> np.ndarray:
        raise NotImplementedError

    def _boundary_values(self, t: np.ndarray, param: float) -> Tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _front(self, t: np.ndarray, param: float) -> Optional[np.ndarray]:
        """Position of the front that must stay inside the domain for the closed forms to hold (``None``: none)."""
        return None

    # ---- argument checks -------------------------------------------------------------------
    def check_param(self, param: Any) -> float:
        """Return ``param`` as a float after checking it is a finite admissible value.

        Parameters
        ----------
        param : float

        Returns
        -------
        float

        Raises
        ------
        TypeError
            If ``param`` is not a real number.
        ValueError
            If it is not finite or lies outside ``param_bounds``.
        """
        param = check_real(param, "param")
        lo, hi = self.param_bounds
        if not lo < param < hi:
            what = "positive" if (lo, hi) == (0.0, math.inf) else f"strictly between {lo:g} and {hi:g}"
            raise ValueError(f"param ({self.param_meaning} {self.param_name}) must be {what}, got {param}")
        return param

    @staticmethod
    def _check_times(t: ArrayLike) -> np.ndarray:
        t = _real_array(t, "t")
        if t.ndim != 1:
            raise ValueError(f"t must be a scalar or a 1-D array, got shape {t.shape}")
        if not np.all(np.isfinite(t)) or np.any(t < 0):
            raise ValueError(f"t must be finite and non-negative, got values in [{t.min()}, {t.max()}]")
        return t

    def _check_x(self, x: ArrayLike) -> np.ndarray:
        x = _real_array(x, "x")
        if x.ndim != 1:
            raise ValueError(f"x must be a scalar or a 1-D array, got shape {x.shape}")
        lo, hi = self.domain
        if not np.all(np.isfinite(x)) or np.any(x < lo) or np.any(x > hi):
            raise ValueError(f"x must be finite and lie in the domain [{lo}, {hi}], got values in "
                             f"[{x.min()}, {x.max()}]")
        return x

    def _checked(self, t: ArrayLike, param: Any) -> Tuple[np.ndarray, float]:
        """Checked times and parameter, with the front (if any) inside the domain at every time."""
        t, param = self._check_times(t), self.check_param(param)
        front = self._front(t, param)
        if front is not None and np.max(front) > self.domain[1]:
            k = int(np.argmax(front))
            raise ValueError(
                f"t must keep the {self.front_name} inside [{self.domain[0]}, {self.domain[1]}] (the closed forms "
                f"hold only until it leaves), got t = {t[k]:.6g} where it is at {front[k]:.6g}")
        return t, param

    # ---- the checked API ---------------------------------------------------------------------
    def solution(self, x: ArrayLike, t: ArrayLike, param: float) -> np.ndarray:
        """Exact solution u(x, t).

        Parameters
        ----------
        x : array_like, shape (nx,)
            Points in the domain.
        t : array_like, shape (nt,)
            Non-negative times (the front, if any, still inside the domain).
        param : float
            PDE parameter.

        Returns
        -------
        numpy.ndarray, shape (nt, nx)

        Raises
        ------
        TypeError, ValueError
            For a bad ``x``, ``t`` or ``param``.
        """
        t, param = self._checked(t, param)
        return self._solution(self._check_x(x)[None, :], t[:, None], param)

    def total(self, t: ArrayLike, param: float) -> np.ndarray:
        """Closed-form conserved total: initial total plus the time integral of the boundary in-flux.

        ``t``, ``param`` and the errors are those of :meth:`solution`.

        Returns
        -------
        numpy.ndarray, shape (nt,)
        """
        return self._total(*self._checked(t, param))

    def boundary_values(self, t: ArrayLike, param: float) -> Tuple[np.ndarray, np.ndarray]:
        """Values of u at ``x_min`` and ``x_max`` prescribed by the boundary conditions.

        ``t``, ``param`` and the errors are those of :meth:`solution`.

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            Left and right boundary values, each of shape (nt,).
        """
        return self._boundary_values(*self._checked(t, param))

    def shock_position(self, t: ArrayLike, param: float) -> np.ndarray:
        """Position of the discontinuity at times ``t`` (only for ``has_shock`` problems), shape ``(nt,)``.

        ``t``, ``param`` and the other errors are those of :meth:`solution`.

        Raises
        ------
        NotImplementedError
            If the problem has no shock.
        """
        if not self.has_shock:
            raise NotImplementedError(f"problem {self.name!r} has no shock")
        t, param = self._checked(t, param)
        return self._front(t, param)

    def shock_threshold(self, param: float) -> float:
        """Level (a float) that separates the two states of the shock at parameter ``param``.

        Used to locate the shock in samples (:func:`probconserv_ext.shock_positions`); a bad ``param`` raises as in
        :meth:`check_param`.

        Raises
        ------
        NotImplementedError
            If the problem has no shock.
        """
        raise NotImplementedError(f"problem {self.name!r} has no shock")

    # ---- data sets ---------------------------------------------------------------------------
    def grid(self, nx: int) -> np.ndarray:
        """Uniform grid with both end points.

        Parameters
        ----------
        nx : int
            Number of nodes, at least 3.

        Returns
        -------
        numpy.ndarray, shape (nx,)

        Raises
        ------
        TypeError, ValueError
            If ``nx`` is not an integer >= 3.
        """
        return np.linspace(self.domain[0], self.domain[1], check_int(nx, "nx", minimum=3))

    def times(self, nt: int) -> np.ndarray:
        """``nt`` equally spaced times in ``(0, t_final]``.

        Parameters
        ----------
        nt : int
            Number of time slices (at least 1; ``TypeError`` or ``ValueError`` otherwise).

        Returns
        -------
        numpy.ndarray, shape (nt,)
            ``t_final * (1, 2, ..., nt) / nt``: the last one is ``t_final``.
        """
        nt = check_int(nt, "nt", minimum=1)
        return self.t_final * np.arange(1, nt + 1) / nt

    def sample_params(self, n: int, seed: Any) -> np.ndarray:
        """``n`` training parameters drawn uniformly from ``train_range`` with a seeded generator.

        Parameters
        ----------
        n : int
            At least 1.
        seed : int or numpy seed
            Seed of ``numpy.random.default_rng``.

        Returns
        -------
        numpy.ndarray, shape (n,)
            Sorted.

        Raises
        ------
        TypeError, ValueError
            If ``n`` is not an integer >= 1.
        """
        n = check_int(n, "n", minimum=1)
        if isinstance(seed, (bool, float, str)) or is_bool(seed):
            raise TypeError(f"seed must be an integer or a numpy seed, got {seed!r} ({type(seed).__name__})")
        if isinstance(seed, int) and seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        rng = np.random.default_rng(seed)
        lo, hi = self.train_range
        return np.sort(rng.uniform(lo, hi, size=n))

    def normalise_param(self, params: ArrayLike) -> np.ndarray:
        """Map parameters affinely so that ``train_range`` becomes [0, 1] (tests may fall outside).

        Parameters
        ----------
        params : array_like

        Returns
        -------
        numpy.ndarray
            Same shape, float64.
        """
        lo, hi = self.train_range
        return (_real_array(params, "params").reshape(np.shape(params)) - lo) / (hi - lo)

    def make_data(self, params: ArrayLike, nx: int, nt: int) -> ProblemData:
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

        Raises
        ------
        TypeError, ValueError
            For empty or bad parameters, or a bad ``nx`` or ``nt``.
        """
        params = _real_array(params, "params")
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

    def __repr__(self) -> str:
        return f"{type(self).__name__}(train {self.param_name} in {self.train_range}, test {self.test_params})"
