"""Conservation-law test problems with exact solutions, conserved totals and shock positions."""

from _physics_constrained.validation import check_choice

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


def get_problem(name: str) -> ConservationProblem:
    """Instantiate a problem by name.

    Parameters
    ----------
    name : str
        One of ``PROBLEMS``: ``"diffusion"``, ``"pme"``, ``"stefan"``, ``"advection"``.

    Returns
    -------
    ConservationProblem

    Raises
    ------
    ValueError
        For an unknown name.
    """
    return PROBLEMS[check_choice(name, "name", sorted(PROBLEMS))]()


__all__ = ["ConservationProblem", "ProblemData", "trapezoid_weights", "DiffusionProblem", "PorousMediumProblem",
           "StefanProblem", "AdvectionProblem", "stefan_constants", "PROBLEMS", "get_problem"]
