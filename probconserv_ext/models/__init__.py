"""Probabilistic neural operators on neuralop's FNO: a deep ensemble and a heteroscedastic FNO.

An attentive neural process (:class:`AttentiveNeuralProcess`) gives the paper's observation-conditioned base model.
``predict(x)`` returns a torch distribution (``LowRankMultivariateNormal`` for the ensemble, ``Normal`` for the
heteroscedastic FNO) that :class:`~probconserv_ext.ProbConserv` takes as is; constructors and training take a
``seed`` and leave the global random state unchanged.
"""

from .ensemble import FNOEnsemble
from .neural_process import AttentiveNeuralProcess, fit_neural_process, sample_observations
from .heteroscedastic import HeteroscedasticFNO, gaussian_nll_loss
from .training import fit_ensemble, fit_heteroscedastic

__all__ = ["AttentiveNeuralProcess", "fit_neural_process", "sample_observations", "FNOEnsemble", "HeteroscedasticFNO",
           "gaussian_nll_loss", "fit_ensemble", "fit_heteroscedastic"]
