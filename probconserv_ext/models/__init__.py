"""Probabilistic neural operators on neuralop's FNO: a deep ensemble and a heteroscedastic FNO."""

from .ensemble import FNOEnsemble
from .heteroscedastic import HeteroscedasticFNO, gaussian_nll_loss
from .training import fit_ensemble, fit_heteroscedastic

__all__ = ["FNOEnsemble", "HeteroscedasticFNO", "gaussian_nll_loss", "fit_ensemble", "fit_heteroscedastic"]
