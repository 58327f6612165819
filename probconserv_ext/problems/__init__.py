"""Conservation-law test problems with exact solutions, conserved totals and shock positions."""

from .advection import AdvectionProblem
from .base import ConservationProblem, ProblemData, trapezoid_weights
from .diffusion import DiffusionProblem
from .pme import PorousMediumProblem
from .stefan import StefanProblem, stefan_constants

PROBLEMS = {
    "diffusion": DiffusionProblem,
    "pme": PorousMediumProblem,
    "stefan": StefanProblem,
    "advection": AdvectionProblem,
}


def get_problem(name):
    """Instantiate a problem by name (one of ``PROBLEMS``)."""
    if name not in PROBLEMS:
        raise ValueError(f"name must be one of {sorted(PROBLEMS)}, got {name!r}")
    return PROBLEMS[name]()


__all__ = [
    "ConservationProblem",
    "ProblemData",
    "trapezoid_weights",
    "DiffusionProblem",
    "PorousMediumProblem",
    "StefanProblem",
    "AdvectionProblem",
    "stefan_constants",
    "PROBLEMS",
    "get_problem",
]
