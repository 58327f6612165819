"""Data generators for BOON's test problems (numpy/scipy and torch solvers, seeded, optionally cached).

Each generator returns a :class:`BoundaryProblem` whose ``boundary`` and ``boundary_values``
feed the BOON wrappers directly.
"""

from .base import BoundaryProblem, BoundaryProblemDataset, cached_problem
from .cavity import cavity_velocity, lid_driven_cavity, solve_cavity, solve_cavity_steady
from .burgers import (
    burgers_cole_hopf_sine,
    burgers_dirichlet,
    burgers_periodic,
    solve_burgers_dirichlet,
    solve_burgers_periodic,
)
from .grf import gaussian_random_field
from .heat import HEAT_PRESETS, heat_neumann, heat_neumann_preset, solve_heat_neumann
from .stokes import (
    STOKES_PRESETS,
    solve_stokes_dirichlet,
    stokes_exact,
    stokes_layer,
    stokes_second_problem,
    stokes_spacetime,
)
from .wave import solve_wave, wave_equation

__all__ = [
    "BoundaryProblem",
    "BoundaryProblemDataset",
    "cached_problem",
    "gaussian_random_field",
    "heat_neumann",
    "heat_neumann_preset",
    "HEAT_PRESETS",
    "solve_heat_neumann",
    "stokes_second_problem",
    "solve_stokes_dirichlet",
    "stokes_layer",
    "stokes_exact",
    "stokes_spacetime",
    "STOKES_PRESETS",
    "burgers_periodic",
    "burgers_dirichlet",
    "solve_burgers_periodic",
    "solve_burgers_dirichlet",
    "burgers_cole_hopf_sine",
    "lid_driven_cavity",
    "solve_cavity",
    "solve_cavity_steady",
    "cavity_velocity",
    "wave_equation",
    "solve_wave",
]
