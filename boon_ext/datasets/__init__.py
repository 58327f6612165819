"""Data generators for BOON's test problems (numpy/scipy solvers, seeded, optionally cached).

Each generator returns a :class:`BoundaryProblem` whose ``boundary`` and ``boundary_values``
feed the BOON wrappers directly.
"""

from .base import BoundaryProblem, BoundaryProblemDataset, cached_problem
from .burgers import (
    burgers_cole_hopf_sine,
    burgers_dirichlet,
    burgers_periodic,
    solve_burgers_dirichlet,
    solve_burgers_periodic,
)
from .grf import gaussian_random_field
from .heat import heat_neumann, solve_heat_neumann
from .stokes import solve_stokes_dirichlet, stokes_layer, stokes_second_problem

__all__ = [
    "BoundaryProblem",
    "BoundaryProblemDataset",
    "cached_problem",
    "gaussian_random_field",
    "heat_neumann",
    "solve_heat_neumann",
    "stokes_second_problem",
    "solve_stokes_dirichlet",
    "stokes_layer",
    "burgers_periodic",
    "burgers_dirichlet",
    "solve_burgers_periodic",
    "solve_burgers_dirichlet",
    "burgers_cole_hopf_sine",
]
