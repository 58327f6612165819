"""Validation, cost and figure scripts of the generators in ``boon_ext.datasets`` (run as ``python -m experiments.datasets.<name>``)."""
