"""ProbConserv: exact linear conservation constraints as a Bayesian update of a Gaussian prediction.

References
----------
Hansen, Maddix, Alizadeh, Gupta, Mahoney (2023). Learning physical models that can respect conservation laws.
ICML 2023.
"""

from _physics_constrained import distribution_version

from .boundary import boundary_constraint
from .constraints import LinearConstraint, conservation_constraint, conserved_total, stack_constraints, value_constraint
from .covariance import Covariance, DenseCovariance, DiagonalCovariance, DowndatedCovariance, LowRankCovariance
from .covariance import IdentityCovariance
from .distributed import DistributedProbConserv
from .gaussian import ConstrainedGaussian, StructuredGaussian
from .layer import ProbConserv
from .losses import gaussian_nll
from .quadrature import flatten_field, quadrature_weights, unflatten_field
from .uqno import band_to_std, band_z_score, from_uqno

__version__ = distribution_version()

__all__ = [
    "__version__",
    "LinearConstraint",
    "conservation_constraint",
    "conserved_total",
    "stack_constraints",
    "value_constraint",
    "boundary_constraint",
    "from_uqno",
    "band_to_std",
    "band_z_score",
    "quadrature_weights",
    "flatten_field",
    "unflatten_field",
    "ProbConserv",
    "DistributedProbConserv",
    "ConstrainedGaussian",
    "StructuredGaussian",
    "gaussian_nll",
    "Covariance",
    "DiagonalCovariance",
    "LowRankCovariance",
    "DenseCovariance",
    "DowndatedCovariance",
    "IdentityCovariance",
]

# --- test problems, probabilistic base models and the paper's metrics ---
from .metrics import (  # noqa: E402
    METHODS,
    compare_methods,
    draw_samples,
    evaluate,
    gaussian_log_likelihood,
    posteriors,
    shock_positions,
)
from .diagnostics import gain_bound, update_diagnostics  # noqa: E402
from .controls import positive_control  # noqa: E402
from .models import FNOEnsemble, HeteroscedasticFNO, fit_ensemble, fit_heteroscedastic, gaussian_nll_loss  # noqa: E402
from .models import AttentiveNeuralProcess, fit_neural_process  # noqa: E402
from .problems import (  # noqa: E402
    PROBLEMS,
    AdvectionProblem,
    ConservationProblem,
    DiffusionProblem,
    PorousMediumProblem,
    ProblemData,
    StefanProblem,
    get_problem,
    stefan_constants,
)

__all__ += [
    "ConservationProblem",
    "ProblemData",
    "DiffusionProblem",
    "PorousMediumProblem",
    "StefanProblem",
    "AdvectionProblem",
    "stefan_constants",
    "PROBLEMS",
    "get_problem",
    "FNOEnsemble",
    "HeteroscedasticFNO",
    "gaussian_nll_loss",  # deprecated alias of gaussian_nll (log-variance form)
    "fit_ensemble",
    "fit_heteroscedastic",
    "AttentiveNeuralProcess",
    "fit_neural_process",
    "METHODS",
    "shock_positions",
    "gaussian_log_likelihood",
    "draw_samples",
    "posteriors",
    "evaluate",
    "compare_methods",
    "update_diagnostics",
    "gain_bound",
    "positive_control",
]
