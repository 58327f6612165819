"""Fixtures shared by the ProbConserv tests."""

import pytest


@pytest.fixture(scope="module")
def repro(load_experiment):
    """``experiments/reproduce_probconserv.py`` as a module."""
    return load_experiment("reproduce_probconserv")
