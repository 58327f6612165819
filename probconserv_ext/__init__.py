"""ProbConserv: exact linear conservation constraints as a Bayesian update of a Gaussian prediction."""

__all__ = []
